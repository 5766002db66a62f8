"""`mailer send`, `mailer sends ...`, `mailer worker` and `mailer dkim keygen`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from mailer.cli.common import console, session, settings
from mailer.errors import SendError
from mailer.publiclinks import require_usable_links
from mailer.store.models import Send, SendStatus

if TYPE_CHECKING:  # the delivery engine is imported only by commands that send
    from mailer.delivery.effects import SendEffects
    from mailer.delivery.report import Progress as SendProgress
    from mailer.delivery.report import SendReport

ISSUE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
topic_option = click.option("--topic", "topics", multiple=True, metavar="NAME",
                            help="Send to subscribers of this topic (repeat; default: the issue's topics, else everyone).")
insecure_links_option = click.option(
    "--allow-insecure-links", is_flag=True,
    help="Send even though base_url is http://, loopback or private (links readers cannot use).")
language_option = click.option("--language", "languages", multiple=True, type=click.Choice(["en", "cy", "both"]),
                               help="Only subscribers who chose this language (repeat; default: all).")


@click.command()
@click.argument("issue_path", metavar="ISSUE", type=ISSUE_FILE, required=False)
@topic_option
@language_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask before sending.")
@click.option("--again", is_flag=True, help="Send an issue that already has a send (any but a cancelled one) once more.")
@click.option("--test", "test_addresses", multiple=True, metavar="ADDRESS",
              help='Send a copy marked "[TEST]" to ADDRESS instead (repeat); records nothing.')
@click.option("--resume", "resume_id", type=int, metavar="SEND_ID", help="Continue an interrupted or paused send.")
@insecure_links_option
def send(issue_path: Path | None, topics: tuple[str, ...], languages: tuple[str, ...], yes: bool, again: bool,
         test_addresses: tuple[str, ...], resume_id: int | None, allow_insecure_links: bool) -> None:
    """Send ISSUE to its audience, each subscriber exactly once.

    Shows how many subscribers it will reach and asks first (unless --yes). An
    issue that was sent (or is scheduled) already is refused, naming that send,
    unless --again. Ctrl-C stops after the message in flight; `mailer send
    --resume SEND_ID` continues.

    Example: mailer send issues/2026-12-news.yaml --topic news
    """
    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)
    if resume_id is not None:
        if issue_path or test_addresses:
            raise click.UsageError("--resume takes no ISSUE and no --test")
        _deliver(resume_id)
        return
    if issue_path is None:
        raise click.UsageError("give an ISSUE file to send, or --resume SEND_ID")
    if test_addresses:
        if topics or yes:
            raise click.UsageError("--test sends to the addresses given only; it takes no --topic and no --yes")
        _send_test(issue_path, test_addresses, languages)
        return

    from mailer.content import load_issue
    from mailer.delivery.dkim import signer_for
    from mailer.delivery.once import check_repeat
    from mailer.delivery.sends import audience_size, check_audience, create_send

    issue = load_issue(issue_path)
    signer_for(settings())  # a bad DKIM key is refused before a send is created
    topics = topics or tuple(issue.topics)
    with session() as db:
        earlier = check_repeat(db, settings=settings(), slug=issue.slug, again=again)
        check_audience(db, topics, languages)
        size = audience_size(db, topics=topics, languages=languages)
        subscribers = f"{size} subscriber{'s' if size != 1 else ''}"
        console.print(f"Issue {issue.slug}: {subscribers} "
                      f"(topics: {', '.join(topics) or 'all'}; languages: {', '.join(languages) or 'all'})")
        if size == 0:
            raise SendError("nobody to send to: no active subscriber matches those topics and languages")
        if earlier:
            console.print(f"Note: {earlier}.", markup=False, highlight=False)
        if not yes:
            question = f"{earlier}. Send it again to {subscribers} now?" if earlier else f"Send it to {subscribers} now?"
            click.confirm(question, abort=True)
        created = create_send(db, settings=settings(), issue_path=issue_path, topics=topics, languages=languages)
    console.print(f"Send {created.id}: {created.title}")
    _deliver(created.id)


def _send_test(issue_path: Path, addresses: Sequence[str], languages: Sequence[str]) -> None:
    from mailer.delivery.testcopy import send_test_copies

    if len(languages) > 1:
        raise click.UsageError("a test copy takes at most one --language")
    split = [address.strip() for value in addresses for address in value.split(",") if address.strip()]
    with session() as db:
        results = send_test_copies(db, settings=settings(), issue_path=issue_path, addresses=split,
                                   language=languages[0] if languages else None)
    for address, reply in results:
        console.print(f"test copy to {address}: {reply}")
    if any(reply.startswith("not sent") for _, reply in results):
        raise SendError("some test copies were not sent")


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the send to stop after the message in flight; a second one interrupts."""
    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("Stopping after the message in flight (Ctrl-C again to interrupt)...")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no signal handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _deliver(send_id: int) -> None:
    from mailer.delivery.engine import deliver

    stop = threading.Event()
    columns = (TextColumn("send {task.fields[send]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sent {task.fields[sent]} · deferred {task.fields[deferred]} · failed {task.fields[failed]}"
                          " · {task.fields[rate]:.0f}/s · {task.fields[left]}"))
    with _ctrl_c_stops(stop), Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("send", total=None, send=send_id, sent=0, deferred=0, failed=0, rate=0.0, left="")

        def show(progress: SendProgress) -> None:
            counts = progress.counts
            left = progress.seconds_left
            bar.update(task, total=progress.total, completed=progress.done, sent=counts.get("sent", 0),
                       deferred=counts.get("deferred", 0), failed=counts.get("failed", 0), rate=progress.rate,
                       left=f"{left:.0f} s left" if left is not None else "")

        report = deliver(settings(), send_id, stop=stop, on_progress=show)
    _print_report(report)
    if report.status == SendStatus.paused:
        raise SendError(f"send {send_id} is paused; fix the cause, then: mailer send --resume {send_id}")
    if report.status == SendStatus.sending and report.counts.get("queued"):
        raise SendError(f"send {send_id} is not finished; continue with: mailer send --resume {send_id}")


def _print_report(report: SendReport, bounces: dict[str, int] | None = None) -> None:
    console.print(f"[bold]Send {report.send_id}[/bold]: {report.title} — {report.status}"
                  + (f" ({report.note})" if report.note else ""))
    table = Table("language", *report.counts, "total")
    for language, counts in sorted(report.by_language.items()):
        table.add_row(language, *(str(counts.get(status, 0)) for status in report.counts), str(sum(counts.values())))
    table.add_row("all", *(str(n) for n in report.counts.values()), str(report.total), style="bold")
    console.print(table)
    if report.failures:
        failures = Table("failed address", "server's reply", title="Failures")
        for address, reply in report.failures:
            failures.add_row(address, reply)
        console.print(failures)
    if bounces is not None:
        console.print("Bounces: " + ", ".join(f"{n} {kind}" for kind, n in bounces.items()))
    times = []
    if report.started_at:
        times.append(f"started {report.started_at:%Y-%m-%d %H:%M:%S} UTC")
    if report.finished_at:
        times.append(f"finished {report.finished_at:%Y-%m-%d %H:%M:%S} UTC "
                     f"({(report.finished_at - report.started_at).total_seconds():.0f} s)")
    if report.sent_now:
        times.append(f"this run: {report.sent_now} sent in {report.elapsed:.1f} s ({report.rate:.0f}/s)")
    if report.next_retry_at and report.status == "sending":
        times.append(f"next retry {report.next_retry_at:%Y-%m-%d %H:%M} UTC")
    if times:
        console.print("; ".join(times))


@click.group()
def sends() -> None:
    """Look at and control sends."""


@sends.command("list")
@click.option("--limit", default=50, show_default=True, help="How many of the latest sends.")
def list_command(limit: int) -> None:
    """The latest sends with their status and progress."""
    from mailer.delivery.report import status_counts
    from mailer.delivery.sends import list_sends

    table = Table("id", "status", "title", "created (UTC)", "scheduled (UTC)", "sent", "waiting", "failed")
    with session() as db:
        for item in list_sends(db, limit=limit):
            counts = status_counts(db, send_id=item.id)
            table.add_row(str(item.id), str(item.status), item.title, f"{item.created_at:%Y-%m-%d %H:%M}",
                          f"{item.scheduled_at:%Y-%m-%d %H:%M}" if item.scheduled_at else "",
                          str(counts["sent"]), str(counts["queued"] + counts["deferred"]), str(counts["failed"]))
    console.print(table)


@sends.command()
@click.argument("send_id", type=int)
def show(send_id: int) -> None:
    """Counts per status and language, failures, bounces, timings, and what the issue did.

    What it did, by language: delivered, bounced (hard, soft), complaints, readers who
    left after it (one-click, the page, by email) and who changed their preferences
    through its links. Counts only; nobody is tracked.

    Example: mailer sends show 12
    """
    from mailer.bounces.report import bounce_counts
    from mailer.delivery.effects import send_effects
    from mailer.delivery.report import summarise

    with session() as db:
        report = summarise(db, send_id=send_id)
        bounces = bounce_counts(db, send_id)
        effects = send_effects(db, send_id=send_id)
    _print_report(report, bounces)
    _print_effects(effects)


def _print_effects(effects: SendEffects) -> None:
    from mailer.delivery.effects import FIGURES

    languages = effects.languages
    table = Table("what this issue did", *languages, "all", title="After this issue (counts only, nobody tracked)")
    for figure in FIGURES:
        if figure == "left: other" and not effects.total(figure):
            continue
        table.add_row(figure, *(str(effects.count(figure, language)) for language in languages),
                      str(effects.total(figure)))
    console.print(table)


@sends.command()
@click.argument("send_id", type=int)
def links(send_id: int) -> None:
    """How often each link of an issue was followed (with link_counts = true): totals, never who.

    Example: mailer sends links 12
    """
    from mailer.delivery.clicks import link_totals

    with session() as db:
        totals = link_totals(db, send_id=send_id)
    table = Table("#", "link", "followed", title=f"Links of send {send_id}")
    for position, url, clicks in totals:
        table.add_row(str(position), Text(url), str(clicks))
    console.print(table)
    if not settings().link_counts:
        console.print("link_counts is off in the settings: links of new sends are not counted.")


@sends.command()
@click.argument("send_id", type=int)
def pause(send_id: int) -> None:
    """Pause a send; the sending process stops within seconds, after the message in flight."""
    from mailer.delivery.sends import set_status

    with session() as db:
        set_status(db, send_id=send_id, status=SendStatus.paused, note="paused by hand")
    console.print(f"Send {send_id} paused. Continue with: mailer send --resume {send_id}")


@sends.command()
@click.argument("send_id", type=int)
def cancel(send_id: int) -> None:
    """Cancel a send for good; whatever was not sent yet never will be."""
    from mailer.delivery.sends import set_status

    with session() as db:
        set_status(db, send_id=send_id, status=SendStatus.cancelled, note="cancelled by hand")
    console.print(f"Send {send_id} cancelled.")


@sends.command()
@click.argument("send_id", type=int)
def unpublish(send_id: int) -> None:
    """Withdraw the issue of SEND_ID from the public archive and feeds (every send of that issue).

    Its web version answers "not found" from then on. Example: mailer sends unpublish 12
    """
    _publish(send_id, published=False)


@sends.command()
@click.argument("send_id", type=int)
def publish(send_id: int) -> None:
    """Put an issue withdrawn with `mailer sends unpublish` back in the archive. Example: mailer sends publish 12"""
    _publish(send_id, published=True)


def _publish(send_id: int, *, published: bool) -> None:
    from mailer.store.archive import set_published

    with session() as db:
        ids = set_published(db, send_id=send_id, published=published)
        slug = db.get(Send, send_id).issue_slug  # type: ignore[union-attr]
        db.commit()
    which = f"send{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"
    if published:
        click.echo(f"Issue {slug} ({which}) is in the archive again.")
    else:
        click.echo(f"Issue {slug} ({which}) withdrawn from the archive and feeds. "
                   f"Put it back with: mailer sends publish {send_id}")


@click.command()
@click.option("--send", "send_id", type=int, metavar="SEND_ID", help="Work only on this send.")
@click.option("--once", is_flag=True, help="Exit when nothing is due instead of waiting for more.")
def worker(send_id: int | None, once: bool) -> None:
    """Help send with PostgreSQL: claim batches of any send in progress (run several, anywhere)."""
    from mailer.delivery.worker import run_worker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sent = run_worker(settings(), send_id=send_id, once=once, stop=stop,
                      on_report=lambda report: console.print(str(report)))
    console.print(f"Worker done: {sent} messages sent.")


@click.group()
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command()
@click.option("--selector", default="mailer", show_default=True, help="Name of the key in DNS.")
@click.option("--out", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("dkim"),
              show_default=True, help="Folder for the key files.")
def keygen(selector: str, folder: Path) -> None:
    """Write a 2048-bit RSA key pair and print the DNS record to publish."""
    from mailer.delivery.dkim import generate_key

    domain = settings().sender_domain
    private, public, record = generate_key(folder, selector)
    console.print(f"Wrote {private} (keep it private) and {public}.")
    console.print("Publish this DNS record:")
    click.echo(f'{selector}._domainkey.{domain} IN TXT "{record}"')
    console.print("(In a zone file, split the quoted value into strings of at most 255 characters.)")
    console.print("Then set in mailer.toml:")
    click.echo(f'dkim_selector = "{selector}"\ndkim_private_key = "{private}"')
