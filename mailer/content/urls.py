"""The one rule for every link and image address in an issue, in fields and in Markdown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LINK_SCHEMES = ("https", "http", "mailto")
IMAGE_SCHEMES = ("https", "http")
_UNSAFE = re.compile(r"[\x00-\x20\x7f<>\"\\]")


def url_problem(url: str, *, image: bool = False) -> str | None:
    """Why `url` may not appear in an email, or None when it may.

    Addresses without a scheme (relative links) pass here: they are not dangerous,
    only broken in an email, so `lint` warns about them instead.
    """
    allowed = IMAGE_SCHEMES if image else LINK_SCHEMES
    if not url:
        return "is empty"
    if _UNSAFE.search(url):
        return "not a valid URL (it contains spaces, quotes or control characters)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    scheme = parts.scheme.lower()
    if not scheme:
        return None if not url.startswith(":") else "not a valid URL"
    if scheme not in allowed:
        names = [f"{name}:" for name in allowed]
        return f"{scheme}: addresses are not allowed here; use {', '.join(names[:-1])} or {names[-1]}"
    if scheme in ("https", "http") and not parts.hostname:
        return "not a valid URL (no host name after //)"
    if scheme == "mailto" and "@" not in parts.path:
        return "not a valid mailto: address"
    return None


def is_relative(url: str) -> bool:
    """True for addresses that only work on a web page, never in an email."""
    return not urlsplit(url).scheme
