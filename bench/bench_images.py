"""Benchmark of preparing an editor's photo for email (mailer/content/images.py).

Prints the time to prepare a 12-megapixel JPEG (a phone photo: 4000x3000) the way
rendering does (reduced-scale JPEG decoding, then resizing to 1200 px), against a
baseline measured in the same run: decoding the whole photo, then resizing it. Also
the time of a second rendering, when the prepared image comes from the cache. Run:

    .venv/bin/python bench/bench_images.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from bench.common import median_seconds  # noqa: E402
from mailer.content import images  # noqa: E402


def phone_photo(path: Path) -> Path:
    """A 4000x3000 JPEG with some detail, as a phone writes it."""
    photo = Image.effect_noise((1000, 750), 40).convert("RGB").resize((4000, 3000))
    photo.save(path, "JPEG", quality=92)
    return path


def baseline(path: Path) -> bytes:
    """Decode everything, then resize: what preparing costs without reduced-scale decoding."""
    with Image.open(path) as source:
        image = ImageOps.exif_transpose(source)
        image = image.resize((images.MAX_WIDTH, image.height * images.MAX_WIDTH // image.width), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=images.JPEG_QUALITY, optimize=True, progressive=True)
        return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        path = phone_photo(Path(folder) / "launch.jpg")
        prepared = median_seconds(lambda: images.prepare(path), runs, before=images._prepare.cache_clear)
        full = median_seconds(lambda: baseline(path), runs, before=images._prepare.cache_clear)
        images.prepare(path)
        started = time.perf_counter()
        result = images.prepare(path)
        cached = time.perf_counter() - started
    print(f"source: 4000x3000 JPEG, {path.name}; prepared: {result.width}x{result.height}, {len(result.data) // 1024} KB")
    print(f"prepare (reduced-scale decoding, resize, strip, encode), median of {runs}: {prepared * 1000:7.1f} ms")
    print(f"baseline (full decoding, resize, encode), median of {runs}:              {full * 1000:7.1f} ms")
    print(f"again, unchanged file (cache):                                 {cached * 1e6:7.1f} µs")
    print(f"ratio baseline / prepare: {full / prepared:.1f}x")


if __name__ == "__main__":
    main()
