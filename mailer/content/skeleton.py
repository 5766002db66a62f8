"""`mailer issue new`: a fresh issue file from the commented skeleton beside this module."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from babel.dates import format_date

from mailer.errors import MailerError

SKELETON = Path(__file__).with_name("skeleton.yaml")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_issue(folder: Path, slug: str | None = None, today: dt.date | None = None) -> Path:
    """Write `folder/SLUG.yaml` (SLUG defaults to this month, e.g. 2026-12); never overwrites."""
    today = today or dt.date.today()
    slug = slug.removesuffix(".yaml") if slug else today.strftime("%Y-%m")
    if not _SLUG.match(slug):
        raise MailerError(f"{slug!r} is not a usable file name: use letters, digits, '-', '_' and '.'")
    path = folder / f"{slug}.yaml"
    if path.exists():
        raise MailerError(f"{path} already exists; not overwriting it")
    text = (SKELETON.read_text(encoding="utf-8")
            .replace("@PATH@", str(path))
            .replace("@DATE@", today.isoformat())
            .replace("@TITLE@", f"Network news: {format_date(today, 'MMMM y', locale='en_GB')}"))
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
