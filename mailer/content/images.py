"""Images from the editor's folder: resized for email, stripped of metadata, named by content, served under /media.

An image address without a scheme (`src: photos/launch.jpg`, or `![...](photos/launch.jpg)` in
Markdown) is a file beside the issue. Whenever an issue is rendered (built, previewed, scheduled
or sent) each such file is turned upright, made at most `MAX_WIDTH` pixels wide (twice the 600 px
email, for sharp pictures on high-density screens), saved again without its metadata (EXIF, with
any GPS position, XMP, comments) and written to `media_dir` under a name made of its content's
hash (`launch-3f2a9c1d4e5b6a7c.jpg`): the same picture always gets the same name, a changed one a
new name, so a sent email never shows a later picture. `mailer serve` serves the folder at
`base_url/media/NAME`; the email gets that absolute address with the picture's width and height.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from mailer.config import Settings
from mailer.content import markdown
from mailer.content.schema import Issue
from mailer.content.urls import is_relative
from mailer.errors import IssueError, Problem

MAX_WIDTH = 1200  # pixels: 2x the 600 px email
MAX_PIXELS = 60_000_000  # a larger source is refused before it is decoded (a phone photo is 12 to 50 megapixels)
HEAVY_BYTES = 300 * 1024  # after resizing: `lint` warns above this, readers on phones pay for every byte
COLUMN_WIDTH = 544  # the email's content column: 600 px less 28 px padding either side (layout.mjml.j2)
JPEG_QUALITY = 85
MEDIA_PATH = "/media/"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}-[0-9a-f]{16}\.(?:jpg|png|gif)")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}


class ImageProblem(Exception):
    """Why a local image cannot go into an email, in words for the editor."""


@dataclass(frozen=True)
class MediaImage:
    """A local image prepared for email."""

    name: str
    width: int
    height: int
    data: bytes = field(repr=False)

    def url(self, settings: Settings) -> str:
        return f"{settings.base_url}{MEDIA_PATH}{self.name}"

    def shown(self, width: int = COLUMN_WIDTH) -> tuple[int, int]:
        """Width and height in the email: the column's width at most, never enlarged."""
        shown = min(self.width, width)
        return shown, max(1, round(self.height * shown / self.width))


@dataclass(frozen=True)
class LocalImage:
    """Where an issue names a local image: field path, the address as written, the line within a Markdown text."""

    loc: tuple[str | int, ...]
    src: str
    line_offset: int = 0


def local_images(issue: Issue) -> Iterator[LocalImage]:
    """Every image of the issue that is a file, in `image:` fields and in Markdown, in every language."""
    for loc, value in issue.localized():
        if value.kind not in ("image", "markdown"):
            continue
        for language in value.given or (None,):
            text = value.get(language) if language else value.common
            where = (*loc, language) if language else loc
            if value.kind == "image" and text and is_relative(text):
                yield LocalImage(where, text)
            elif value.kind == "markdown" and text:
                yield from (LocalImage(where, link.url, link.line_offset) for link in markdown.links(text)
                            if link.image and is_relative(link.url))


def source_path(issue: Issue, src: str) -> Path:
    """The file an image address names: relative to the issue's folder (`%20` for a space)."""
    folder = issue.path.parent if issue.path else Path.cwd()
    return folder / unquote(src)


def collect(issue: Issue) -> tuple[dict[str, MediaImage], list[Problem]]:
    """Each local image prepared, by its address as written, and a located problem for each that cannot be."""
    prepared: dict[str, MediaImage] = {}
    problems: list[Problem] = []
    for image in local_images(issue):
        try:
            prepared[image.src] = prepare(source_path(issue, image.src))
        except ImageProblem as exc:
            problems.append(issue.problem(image.loc, f"image {image.src!r}: {exc}", image.line_offset))
    return prepared, problems


def publish(issue: Issue, settings: Settings) -> dict[str, MediaImage]:
    """Prepare every local image and write it into `media_dir`; `IssueError` naming each that cannot be."""
    prepared, problems = collect(issue)
    if problems:
        raise IssueError(problems)
    folder = settings.media_path
    for image in prepared.values():
        write(folder, image)
    return prepared


def write(folder: Path, image: MediaImage) -> None:
    """Write `image` into `folder` once: its name is its content, so an existing file is already right."""
    target = folder / image.name
    if target.is_file():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".part", delete=False) as handle:
            handle.write(image.data)
        os.chmod(handle.name, 0o644)  # served to anyone: readers' mail programs fetch it
        os.replace(handle.name, target)
    except OSError as exc:
        raise IssueError([Problem(str(folder), 1, 1, "media_dir", f"cannot write the image {image.name}: {exc.strerror}")]) from None


def prepare(path: Path) -> MediaImage:
    """The image at `path` made ready for email; cached while the file is unchanged."""
    try:
        stat = path.stat()
    except OSError:
        raise ImageProblem(f"no such file (looked for {path})") from None
    if not path.is_file():
        raise ImageProblem(f"not a file ({path})")
    return _prepare(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _prepare(path: str, mtime_ns: int, size: int) -> MediaImage:
    try:
        with Image.open(path) as source:
            if source.width * source.height > MAX_PIXELS:
                raise ImageProblem(f"{source.width}×{source.height} pixels is more than {MAX_PIXELS // 1_000_000} "
                                   f"megapixels; make it smaller first")
            kind = _kind(source)
            data, width, height = (_animation if getattr(source, "n_frames", 1) > 1 else _still)(source, kind)
    except UnidentifiedImageError:
        raise ImageProblem("not an image mailer can read: use JPEG, PNG or GIF") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(f"cannot be read as an image ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()[:16]
    return MediaImage(f"{_slug(Path(path).stem)}-{digest}.{kind}", width, height, data)


def _kind(source: Image.Image) -> str:
    """jpg, png or gif: what mail programs show; other formats become PNG when transparent, JPEG otherwise."""
    if source.format in ("GIF", "PNG"):
        return source.format.lower()
    if source.format == "JPEG":
        return "jpg"
    transparent = source.mode in ("RGBA", "LA", "PA") or "transparency" in source.info
    return "png" if transparent else "jpg"


def _still(source: Image.Image, kind: str) -> tuple[bytes, int, int]:
    if source.format == "JPEG":
        source.draft("RGB", (MAX_WIDTH, MAX_WIDTH))  # decode at a reduced scale: far faster for big photos
    icc_profile = source.info.get("icc_profile")  # colour, not metadata: keeps a photo's colours true
    image = ImageOps.exif_transpose(source)  # upright, as the camera meant it
    image = _fit(image)
    if kind == "jpg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif kind == "png" and image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA")
    image.info = {}  # nothing of the source's metadata goes along
    out = io.BytesIO()
    options = {"icc_profile": icc_profile} if icc_profile and kind != "gif" else {}
    if kind == "jpg":
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, **options)
    elif kind == "png":
        image.save(out, "PNG", optimize=True, **options)
    else:
        image.save(out, "GIF", optimize=True)
    return out.getvalue(), image.width, image.height


def _animation(source: Image.Image, kind: str) -> tuple[bytes, int, int]:
    """Every frame of an animated GIF (or other animation, saved as GIF), each resized; no comments kept."""
    durations = []
    frames = []
    for frame in ImageSequence.Iterator(source):
        durations.append(frame.info.get("duration", 100))
        fitted = _fit(frame.convert("RGBA"))
        fitted.info = {}  # no comment or other metadata goes along
        frames.append(fitted)
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations,
                   loop=source.info.get("loop", 0), disposal=2, optimize=True)
    return out.getvalue(), frames[0].width, frames[0].height


def _fit(image: Image.Image) -> Image.Image:
    if image.width <= MAX_WIDTH:
        return image.copy()
    return image.resize((MAX_WIDTH, max(1, round(image.height * MAX_WIDTH / image.width))), Image.Resampling.LANCZOS)


def _slug(stem: str) -> str:
    plain = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:40].strip("-") or "image"


def media_file(settings: Settings, name: str) -> Path | None:
    """The published file called `name`, or None: only names this module makes, only inside `media_dir`."""
    if not NAME.fullmatch(name):
        return None
    path = settings.media_path / name
    return path if path.is_file() else None


_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r'\ssrc="([^"]*)"')
_WIDTH = re.compile(r'\swidth="(\d+)"')
_HEIGHT = re.compile(r'\sheight="[^"]*"')


def set_heights(page: str, sizes: Mapping[str, MediaImage]) -> str:
    """A `height` attribute, to go with the `width` MJML or Markdown gave it, on every image whose size is known
    (`sizes` by URL): Outlook for Windows lays images out by their attributes and ignores CSS."""

    def sized(match: re.Match[str]) -> str:
        tag = match.group(0)
        src, width = _SRC.search(tag), _WIDTH.search(tag)
        image = sizes.get(html.unescape(src.group(1))) if src else None
        if image is None or width is None:
            return tag
        height = f' height="{max(1, round(image.height * int(width.group(1)) / image.width))}"'
        return _HEIGHT.sub(height, tag, count=1) if _HEIGHT.search(tag) else tag.replace("<img", "<img" + height, 1)

    return _IMG.sub(sized, page)
