"""/media/NAME: published images, and nothing else of the media folder or the disk."""

from __future__ import annotations

from PIL import Image

from mailer.content import load_issue, render_issue


def test_a_published_image_is_served_and_nothing_else(client, settings, tmp_path):
    Image.new("RGB", (1600, 1000), (15, 76, 92)).save(tmp_path / "launch.jpg")
    issue = tmp_path / "issue.yaml"
    issue.write_text('title: "Launch"\ndate: 2026-12-01\nsections:\n  - image: {src: launch.jpg, alt: "The launch"}\n')
    html = render_issue(load_issue(issue), settings, "en").html
    url = html.split('src="', 1)[1].split('"', 1)[0]
    assert url.startswith(f"{settings.base_url}/media/launch-")
    response = client.get(url.removeprefix(settings.base_url))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "immutable" in response.headers["cache-control"] and response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (settings.media_path / url.rsplit("/", 1)[1]).read_bytes()

    (settings.media_path / "notes.txt").write_text("private")
    (settings.media_path / ".launch-0123456789abcdef.jpg.part").write_text("half written")
    for path in ("/media/notes.txt", "/media/.launch-0123456789abcdef.jpg.part", "/media/launch-0123456789abcdef.jpg",
                 "/media/..%2Fmailer.db", "/media/%2e%2e/mailer.db", "/media/../mailer.db", "/media/",
                 "/media/LAUNCH-0123456789ABCDEF.JPG", "/media/a/launch-0123456789abcdef.jpg"):
        assert client.get(path).status_code == 404, path
