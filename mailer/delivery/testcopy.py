"""Test copies: an issue as it stands now, marked "[TEST] ", to a few addresses, recording nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session

from mailer.config import Settings
from mailer.content import load_issue
from mailer.delivery.dkim import signer_for
from mailer.delivery.message import MessageBuilder, Recipient, wire_address
from mailer.delivery.sends import render_variants
from mailer.delivery.transport import open_transport
from mailer.errors import TransportError
from mailer.store.subscribers import get_by_email

PREFIX = "[TEST] "


def send_test_copies(session: Session, *, settings: Settings, issue_path: Path | str, addresses: Sequence[str],
                     language: str | None = None) -> list[tuple[str, str]]:
    """Send one test copy to each address; returns (address, server reply or error) pairs.

    An address that belongs to a subscriber gets their name, language and working
    links; any other gets `language` (default: the issue's first) and links that
    lead nowhere personal. No send and no delivery rows are created.
    """
    rendered = render_variants(settings, load_issue(Path(issue_path)))
    builder = MessageBuilder(settings, rendered, send_id=None, default_language=language or next(iter(rendered)),
                             signer=signer_for(settings), subject_prefix=PREFIX)
    transport = open_transport(settings)
    results = []
    try:
        for address in addresses:
            subscriber = get_by_email(session, email=address)
            try:
                recipient = Recipient(
                    email=wire_address(address),
                    name=subscriber.name if subscriber else "",
                    language=language or (str(subscriber.language) if subscriber else builder.default.language),
                    subscriber_id=subscriber.id if subscriber else None,
                )
                reply = str(transport.send(builder.envelope_sender(recipient), recipient.email,
                                             builder.build(recipient)))
            except TransportError as exc:
                reply = f"not sent: {exc}"
            results.append((address, reply))
    finally:
        transport.close()
    return results
