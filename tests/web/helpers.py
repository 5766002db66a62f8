"""Reading pages, the database and the outbox in web tests."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from mailer.config import Settings
from mailer.store.models import Event, Subscriber


def same_origin(settings: Settings) -> dict[str, str]:
    """What a browser sends with a form posted from one of our own pages (older browsers: Origin only)."""
    return {"origin": settings.base_url}


def form_token(html: str, index: int = 0) -> str:
    return re.findall(r'name="csrf" value="([^"]+)"', html)[index]


def main_text(html: str) -> str:
    """The <main> of a page, where what differs between answers would show."""
    return html[html.index("<main"):html.index("</main>")]


def fresh(db: Session, subscriber: Subscriber) -> Subscriber:
    db.expire_all()
    found = db.get(Subscriber, subscriber.id)
    assert found is not None
    return found


def events(db: Session, subscriber: Subscriber) -> list[tuple[str, str]]:
    """(kind, channel) of the subscriber's events, oldest first."""
    db.expire_all()
    rows = db.scalars(select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.id))
    return [(event.kind, event.channel) for event in rows]


def outbox(settings: Settings) -> list[EmailMessage]:
    folder = Path(settings.outbox_dir)
    return [message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for path in sorted(folder.glob("*.eml"))]


def link_in(message: EmailMessage, path: str) -> str:
    """The first link in the message's text under `path` (e.g. "/confirm/")."""
    body = message.get_body(("plain",))
    assert body is not None
    return re.search(rf"https?://\S+{re.escape(path)}\S+", body.get_content()).group(0)  # type: ignore[union-attr]


def form_action(html: str, index: int = 0) -> str:
    return re.findall(r'<form method="post" action="([^"]+)"', html)[index].replace("&amp;", "&")


def run_cli(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    """`mailer ARGS` with `settings`, as a command run in a process of its own (settings read afresh)."""
    from click.testing import CliRunner

    from mailer.cli import main
    from mailer.cli.common import settings as cli_settings
    from tests.delivery.helpers import env_for

    cli_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env_for(settings), catch_exceptions=False)
    finally:
        cli_settings.cache_clear()


def table_rows(printed: str) -> list[list[str]]:
    """The cells of each line of a table as the commands print it (columns two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in printed.splitlines() if line.strip()]
