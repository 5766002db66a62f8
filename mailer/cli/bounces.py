"""`mailer bounces`: read the bounce mailbox and act on it; report what bounced."""

from __future__ import annotations

import click

from mailer.bounces.policy import process_mailbox
from mailer.bounces.report import bounce_report
from mailer.cli.common import open_store, session, settings


@click.group()
def bounces() -> None:
    """Bounces and complaints: stop mailing addresses that cannot or will not take mail."""


@bounces.command()
@click.option("--mailbox", metavar="PATH_OR_URL",
              help="A Maildir folder, an mbox file or imaps://user:password@host/FOLDER (default: bounce_mailbox).")
def process(mailbox: str | None) -> None:
    """Classify every message in the bounce mailbox and mark the subscribers concerned.

    Also unsubscribes the readers who wrote to their signed unsubscribe address.
    Handled messages are moved to the mailbox's handled folder; anything else stays.
    """
    engine = open_store()
    try:
        report = process_mailbox(settings(), mailbox, engine=engine)
    finally:
        engine.dispose()
    click.echo(str(report))
    for address, status in report.changes:
        click.echo(f"  {address}: now {status}")
    for key, reason in report.skipped:
        click.echo(f"  {click.style('skipped', fg='yellow')} {key}: {reason} (left in place)")


@bounces.command()
@click.option("--send", "send_id", type=int, metavar="ID", help="Only the bounces of this send.")
def report(send_id: int | None) -> None:
    """Counts per kind, the addresses affected and the raw diagnostic lines, newest first."""
    with session() as db_session:
        result = bounce_report(db_session, send_id=send_id)
    scope = f"Send {send_id}" if send_id is not None else "All sends"
    click.echo(f"{scope}: " + ", ".join(f"{number} {kind}" for kind, number in result.counts.items()) + ".")
    for line in result.lines:
        if not line.verified:
            status = "unverified: names no delivery of ours, nobody changed"
        else:
            status = f"now {line.status}" if line.status else "not on the list"
        send = f", send {line.send_id}" if line.send_id else ""
        code = f" {line.code}" if line.code else ""
        click.echo(f"{line.received_at:%Y-%m-%d %H:%M}  {line.kind:<9}  {line.address or '(no address)'}  ({status}{send})"
                   f"  rule {line.rule or '-'}{code}")
        click.echo(f"    {line.diagnostic or '(no diagnostic given)'}")
