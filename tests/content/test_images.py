"""Images from the editor's folder: resized, upright, stripped of metadata, named by content, published and linked."""

from __future__ import annotations

import io
import re

import pytest
from PIL import ExifTags, Image

from mailer.content import load_issue, render_issue
from mailer.content.build import build_issue
from mailer.content.images import MAX_WIDTH, NAME, media_file, prepare
from mailer.content.lint import lint_issue
from mailer.errors import IssueError

GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 28.0, 52.0),
       ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (3.0, 10.0, 41.0)}


def photo(path, size=(3000, 2000), *, orientation: int | None = None, fmt="JPEG", mode="RGB", gps=True):
    """A photo as a phone writes it: big, with the place it was taken and maybe a rotation flag."""
    image = Image.new(mode, size, (40, 120, 160) if mode == "RGB" else (40, 120, 160, 128))
    for x in range(0, size[0], 200):  # some detail, so the file is not trivially small
        image.paste((200, 16, 46) if mode == "RGB" else (200, 16, 46, 255), (x, 0, x + 60, size[1]))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    if gps:
        exif[ExifTags.Base.GPSInfo] = GPS
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, exif=exif) if fmt in ("JPEG", "PNG", "WEBP") else image.save(path, fmt)
    return path


ISSUE = """\
title: "Launch"
date: 2026-12-01
preheader: "Pictures from the launch"
sections:
  - heading: "The launch"
    image: {src: "photos/launch.jpg", alt: "Members at the launch"}
    body: |
      And the hall: ![The hall in Cardiff](photos/hall.png)
"""


@pytest.fixture
def issue_with_photos(tmp_path):
    photo(tmp_path / "photos" / "launch.jpg")
    photo(tmp_path / "photos" / "hall.png", (400, 300), fmt="PNG", mode="RGBA")
    path = tmp_path / "issue.yaml"
    path.write_text(ISSUE, encoding="utf-8")
    return path


def test_a_photo_is_resized_upright_and_stripped_of_its_gps(tmp_path):
    source = photo(tmp_path / "Tŷ Hywel launch.jpg", (4000, 3000), orientation=6)  # taken with the phone turned
    assert Image.open(source).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    prepared = prepare(source)
    assert NAME.fullmatch(prepared.name) and prepared.name.startswith("ty-hywel-launch-") and prepared.name.endswith(".jpg")
    assert (prepared.width, prepared.height) == (MAX_WIDTH, 1600)  # turned upright: portrait, 1200 px wide
    result = Image.open(io.BytesIO(prepared.data))
    assert result.size == (1200, 1600) and result.format == "JPEG"
    assert not result.getexif() and "exif" not in result.info and "xmp" not in result.info
    assert b"Exif" not in prepared.data and b"PhoneMaker" not in prepared.data
    again = prepare(photo(tmp_path / "copy" / "Tŷ Hywel launch.jpg", (4000, 3000), orientation=6))
    assert again.name == prepared.name  # the same picture, the same name


def test_small_images_keep_their_size_and_transparency_stays_png(tmp_path):
    prepared = prepare(photo(tmp_path / "logo.png", (300, 120), fmt="PNG", mode="RGBA"))
    assert (prepared.width, prepared.height) == (300, 120) and prepared.name.endswith(".png")
    assert Image.open(io.BytesIO(prepared.data)).mode == "RGBA"
    webp = prepare(photo(tmp_path / "still.webp", (1600, 900), fmt="WEBP"))
    assert webp.name.endswith(".jpg") and (webp.width, webp.height) == (1200, 675)


def test_an_animated_gif_keeps_its_frames(tmp_path):
    frames = [Image.new("RGB", (1600, 800), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "wave.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0, comment=b"made at home")
    prepared = prepare(path)
    result = Image.open(io.BytesIO(prepared.data))
    assert result.n_frames == 3 and result.size == (1200, 600) and b"made at home" not in prepared.data


def test_what_cannot_be_an_image_is_named(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    for name, message in (("missing.jpg", "no such file"), ("notes.jpg", "not an image mailer can read")):
        with pytest.raises(Exception, match=message):
            prepare(tmp_path / name)


def test_render_publishes_local_images_with_absolute_urls_and_sizes(issue_with_photos, settings):
    rendered = render_issue(load_issue(issue_with_photos), settings, "en")
    tags = re.findall(r"<img\b[^>]*>", rendered.html)
    assert len(tags) == 2
    launch, hall = tags
    url = re.search(r'src="([^"]+)"', launch).group(1)
    assert url.startswith("https://news.example.org/media/launch-") and url.endswith(".jpg")
    assert 'width="544"' in launch and 'height="363"' in launch  # 1200x800, shown at the column's 544 px
    assert re.search(r'src="https://news.example.org/media/hall-[0-9a-f]{16}\.png"', hall)
    assert 'width="400"' in hall and 'height="300"' in hall  # smaller than the column: never enlarged
    name = url.rsplit("/", 1)[1]
    published = settings.media_path / name
    assert published.is_file() and media_file(settings, name) == published
    assert Image.open(published).size == (1200, 800)
    assert "[Members at the launch]" in rendered.text and "[The hall in Cardiff]" in rendered.text


def test_a_narrow_local_image_is_not_stretched_to_the_column(tmp_path, settings):
    photo(tmp_path / "logo.jpg", (200, 100))
    path = tmp_path / "issue.yaml"
    path.write_text(ISSUE.replace("photos/launch.jpg", "logo.jpg").replace("![The hall in Cardiff](photos/hall.png)", ""))
    html = render_issue(load_issue(path), settings, "en").html
    tag = re.search(r"<img\b[^>]*>", html).group(0)
    assert 'width="200"' in tag and 'height="100"' in tag


def test_build_of_an_issue_with_a_missing_image_names_it(issue_with_photos, settings, tmp_path):
    (issue_with_photos.parent / "photos" / "hall.png").unlink()
    with pytest.raises(IssueError) as caught:
        build_issue(load_issue(issue_with_photos), settings, tmp_path / "build", "en")
    [problem] = caught.value.problems
    assert problem.line == 8 and problem.field == "sections[0].body"
    assert "image 'photos/hall.png': no such file" in problem.message


def test_validate_accepts_a_local_image(issue_with_photos):
    assert load_issue(issue_with_photos).sections[0].image.src.get("en") == "photos/launch.jpg"


def test_lint_warns_about_missing_heavy_and_undescribed_images(tmp_path, settings):
    noisy = Image.effect_noise((1000, 700), 120).convert("RGB")  # noise: no compression helps
    (tmp_path / "photos").mkdir()
    noisy.save(tmp_path / "photos" / "noise.png")
    path = tmp_path / "issue.yaml"
    path.write_text("""\
title: {en: "Pictures", cy: "Lluniau"}
date: 2026-12-01
languages: [en, cy]
preheader: {en: "Pictures", cy: "Lluniau"}
sections:
  - image: {src: "photos/noise.png"}
  - image: {src: "photos/gone.jpg", alt: {en: "Gone", cy: "Wedi mynd"}}
    body:
      en: "Text"
      cy: "Testun ![](photos/noise.png)"
""", encoding="utf-8")
    found = [str(problem).removeprefix(f"{path}:") for problem in lint_issue(load_issue(path), settings)]
    assert found[0] == "6:12: sections[0].image: image without alt text: say what it shows for readers who cannot see it"
    assert found[1].startswith("6:18: sections[0].image.src: image 'photos/noise.png' is ") and "KB even resized" in found[1]
    assert found[2] == "7:18: sections[1].image.src: image 'photos/gone.jpg': no such file (looked for " \
                       f"{tmp_path / 'photos' / 'gone.jpg'})"
    assert [line.split(": ", 2)[1] for line in found[3:]] == ["sections[1].body.cy"] * 2
    assert "without alt text" in found[3] + found[4] and "KB even resized" in found[3] + found[4]
    assert len(found) == 5  # and no "relative link" for a file beside the issue; no size check it cannot make


def test_creating_a_send_publishes_the_images_it_freezes(issue_with_photos, settings, session):
    from mailer.delivery.sends import create_send, rendered_variants

    for image in settings.media_path.glob("*") if settings.media_path.exists() else ():
        image.unlink()
    send = create_send(session, settings=settings, issue_path=issue_with_photos)
    html = rendered_variants(send)["en"].html
    names = re.findall(r'src="https://news\.example\.org/media/([^"]+)"', html)
    assert len(names) == 2 and all((settings.media_path / name).is_file() for name in names)
