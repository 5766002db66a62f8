"""Whether `base_url` gives links a reader can use: every unsubscribe and preferences link starts with it.

`mailer init` writes `http://127.0.0.1:8000`, right for trying things on one
machine and wrong in a real email: the reader's mail program would open their
own machine, and RFC 8058 one-click unsubscribe needs https. Sends through an
SMTP server refuse such a `base_url` unless told `--allow-insecure-links`;
`mailer issue lint` warns about it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.errors import SendError

ALLOW_OPTION = "--allow-insecure-links"
# Names that never reach a reader's machine from the internet (RFC 6761, RFC 6762, RFC 8375 and common use).
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".test", ".invalid", ".example")


def base_url_problem(base_url: str) -> str | None:
    """What makes links under `base_url` unusable for readers, or None when they are fine."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    where = f"base_url is {base_url!r}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and not address.is_global:
        kind = "loopback" if address.is_loopback else "private"
        return (f"{where}, a {kind} address: the links in the email would lead each reader to their own "
                f"machine or network; set base_url to the public https:// address of the subscriber pages")
    if address is None and ("." not in host or host == "localhost" or host.endswith(LOCAL_SUFFIXES)):
        return (f"{where}, a name that is not on the internet: readers could not open the links; "
                f"set base_url to the public https:// address of the subscriber pages")
    if parts.scheme != "https":
        return (f"{where}: links must be https:// (one-click unsubscribe, RFC 8058, needs it, and mail "
                f"programs warn about http:// links); set base_url to the https:// address of the pages")
    return None


def require_usable_links(settings: Settings, *, allow_insecure_links: bool = False) -> None:
    """Refuse (`SendError`) to mail readers links they cannot use, unless the user said so.

    Only sends through an SMTP server reach readers; the outbox folder is for looking at.
    """
    problem = base_url_problem(settings.base_url)
    if problem and settings.smtp_host and not allow_insecure_links:
        raise SendError(f"not sending through {settings.smtp_host}: {problem} (or give {ALLOW_OPTION})")
