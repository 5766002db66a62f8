"""`mailer bounces`: read the bounce mailbox and act on it; report what bounced."""

from __future__ import annotations

import click

from mailer.cli.common import group, open_store, session, settings
from mailer.cli.output import echo, safe, styled


@group(examples=["mailer bounces process", "mailer bounces report --send 12"])
def bounces() -> None:
    """Bounces and complaints: stop mailing addresses that cannot or will not take mail."""


@bounces.command(examples=["mailer bounces process", "mailer bounces process --mailbox ~/Maildir/.bounces"])
@click.option("--mailbox", metavar="PATH_OR_URL",
              help="A Maildir folder, an mbox file or imaps://user:password@host/FOLDER (default: bounce_mailbox).")
def process(mailbox: str | None) -> None:
    """Classify every message in the bounce mailbox and mark the subscribers concerned.

    Also unsubscribes the readers who wrote to their signed unsubscribe address.
    Handled messages are moved to the mailbox's handled folder; anything else stays.
    """
    from mailer.bounces.policy import process_mailbox

    engine = open_store()
    try:
        report = process_mailbox(settings(), mailbox, engine=engine)
    finally:
        engine.dispose()
    echo(str(report))
    for address, status in report.changes:
        echo(f"  {safe(address)}: now {status}")
    for key, reason in report.skipped:
        echo("  ", styled("skipped", "yellow"), f"{safe(key)}: {safe(reason)} (left in place)")


@bounces.command(examples=["mailer bounces report", "mailer bounces report --send 12"])
@click.option("--send", "send_id", type=click.IntRange(min=1), metavar="SEND_ID", help="Only the bounces of this send.")
def report(send_id: int | None) -> None:
    """Counts per kind, the addresses affected and the raw diagnostic lines, newest first."""
    from mailer.bounces.report import bounce_report

    with session() as db_session:
        result = bounce_report(db_session, send_id=send_id)
    scope = f"Send {send_id}" if send_id is not None else "All sends"
    echo(f"{scope}: " + ", ".join(f"{number} {kind}" for kind, number in result.counts.items()) + ".")
    for line in result.lines:
        if not line.verified:
            status = "unverified: names no delivery of ours, nobody changed"
        else:
            status = f"now {line.status}" if line.status else "not on the list"
        send = f", send {line.send_id}" if line.send_id else ""
        code = f" {safe(line.code)}" if line.code else ""
        echo(f"{line.received_at:%Y-%m-%d %H:%M}  {line.kind:<9}  {safe(line.address or '(no address)')}  ({status}{send})"
             f"  rule {line.rule or '-'}{code}")
        echo(f"    {safe(line.diagnostic or '(no diagnostic given)')}")
