"""`mailer config check`: what would stop the first real send, found before it.

Each check really talks to what it checks (the database, the SMTP server, the DKIM
key on disk) and says what it found in one line; nothing is written or sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from mailer.config import Settings, without_password
from mailer.errors import MailerError

SAMPLE_DOMAINS = ("example.org", "example.com", "example.net")


class Status(StrEnum):
    ok = "ok"
    warning = "warning"
    failed = "failed"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in the order a first send depends on them."""
    checks: list[Callable[[Settings], Check]] = [check_database, check_delivery, check_base_url, check_sender, check_dkim]
    for check in checks:
        yield check(settings)


def check_database(settings: Settings) -> Check:
    """The database answers and its schema is current; a missing SQLite file is not created."""
    from mailer.store.db import make_engine, require_current

    url = settings.database_url
    if url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not file.exists():
            return Check("database", Status.failed, f"no database at {file}: run `mailer db upgrade`")
    try:
        engine = make_engine(url)
        try:
            require_current(engine)
        finally:
            engine.dispose()
    except MailerError as exc:  # unreachable, unreadable, or a schema behind the code
        return Check("database", Status.failed, str(exc))
    return Check("database", Status.ok, f"{without_password(url)} answers, schema up to date")


def check_delivery(settings: Settings) -> Check:
    """The SMTP server accepts a connection, TLS and the login; or where the outbox is."""
    from mailer.delivery.transport import SMTPTransport

    if not settings.smtp_host:
        return Check("delivery", Status.warning,
                     f"smtp_host is empty: messages are written to {settings.outbox_dir}, not sent")
    transport = SMTPTransport(host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
                              username=settings.smtp_username, password=settings.smtp_password,
                              timeout=settings.smtp_timeout)
    try:
        greeting = transport.check()
    except MailerError as exc:
        return Check("delivery", Status.failed, str(exc))
    login = f", logged in as {settings.smtp_username}" if settings.smtp_username else ""
    return Check("delivery", Status.ok,
                 f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}{login}): {greeting}")


def check_base_url(settings: Settings) -> Check:
    """Links readers can open: the same test that makes a send refuse (`mailer.publiclinks`)."""
    from mailer.publiclinks import base_url_problem

    problem = base_url_problem(settings.base_url)
    host = urlsplit(settings.base_url).hostname or ""
    if problem is None and host.endswith(SAMPLE_DOMAINS):
        problem = f"base_url is {settings.base_url!r}, still the sample's {host}"
    if problem:
        return Check("base_url", Status.warning, problem)
    return Check("base_url", Status.ok, f"links start with {settings.base_url}")


def check_sender(settings: Settings) -> Check:
    if settings.sender_domain.endswith(SAMPLE_DOMAINS):
        return Check("sender", Status.warning, f"{settings.sender_address} is still the sample's address")
    return Check("sender", Status.ok, f"{settings.text('sender_name', 'both')} <{settings.sender_address}>")


def check_dkim(settings: Settings) -> Check:
    """The key can be read; the detail is the DNS record it needs, to compare with what is published."""
    from mailer.delivery.dkim import dns_record, signer_for

    try:
        signer = signer_for(settings)
    except MailerError as exc:
        return Check("dkim", Status.failed, str(exc))
    if signer is None:
        return Check("dkim", Status.warning,
                     "not signing: set dkim_selector and dkim_private_key (`mailer dkim keygen` writes a key)")
    record = dns_record(signer.private_key.public_key())
    name = f"{settings.dkim_selector}._domainkey.{settings.sender_domain}"
    return Check("dkim", Status.ok, f'key read; publish: {name} IN TXT "{record}"')
