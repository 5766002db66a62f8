"""`mailer send`, `mailer sends ...`, `mailer worker` and `mailer dkim keygen`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli import output
from mailer.cli.common import (
    command,
    group,
    insecure_links_option,
    issue_argument,
    language_option,
    send_id_argument,
    session,
    settings,
    topic_option,
)
from mailer.errors import SendError

if TYPE_CHECKING:  # the delivery engine is imported only by commands that send
    from mailer.delivery.effects import SendEffects
    from mailer.delivery.report import Progress as SendProgress
    from mailer.delivery.report import SendReport


@command(examples=["mailer send issues/2026-12-news.yaml --topic news",
                   "mailer send issues/2026-12-news.yaml --test editor@example.org"])
@issue_argument(required=False)
@topic_option
@language_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask before sending.")
@click.option("--again", is_flag=True, help="Send an issue that already has a send (any but a cancelled one) once more.")
@click.option("--test", "test_addresses", multiple=True, metavar="ADDRESS",
              help='Send a copy marked "[TEST]" to ADDRESS instead (repeat); records nothing.')
@click.option("--resume", "resume_id", type=click.IntRange(min=1), metavar="SEND_ID",
              help="Continue an interrupted or paused send (the same as `mailer sends resume SEND_ID`).")
@insecure_links_option
def send(issue_path: Path | None, topics: tuple[str, ...], languages: tuple[str, ...], yes: bool, again: bool,
         test_addresses: tuple[str, ...], resume_id: int | None, allow_insecure_links: bool) -> None:
    """Send ISSUE to its audience, each subscriber exactly once.

    Shows how many subscribers it will reach and asks first (unless --yes). An
    issue that was sent (or is scheduled) already is refused, naming that send,
    unless --again. Ctrl-C (or SIGTERM) stops after the messages in flight (one per
    connection); `mailer sends resume SEND_ID` continues.
    """
    from mailer.publiclinks import require_usable_links

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
    from mailer.store.models import stored_id

    issue = load_issue(issue_path)
    signer_for(settings())  # a bad DKIM key is refused before a send is created
    topics = topics or tuple(issue.topics)
    with session() as db:
        earlier = check_repeat(db, settings=settings(), slug=issue.slug, again=again)
        check_audience(db, topics, languages)
        size = audience_size(db, topics=topics, languages=languages)
        subscribers = output.plural(size, "subscriber")
        output.echo(f"Issue {issue.slug}: {subscribers} "
                    f"(topics: {', '.join(topics) or 'all'}; languages: {', '.join(languages) or 'all'})")
        if size == 0:
            raise SendError("nobody to send to: no active subscriber matches those topics and languages")
        if earlier:
            output.echo(f"Note: {earlier}.")
        if not yes:
            question = f"{earlier}. Send it again to {subscribers} now?" if earlier else f"Send it to {subscribers} now?"
            click.confirm(output.printable(question), abort=True)
        created = create_send(db, settings=settings(), issue_path=issue_path, topics=topics, languages=languages)
    output.echo(f"Send {created.id}: {created.title}")
    _deliver(stored_id(created))


def _send_test(issue_path: Path, addresses: Sequence[str], languages: Sequence[str]) -> None:
    from mailer.delivery.testcopy import send_test_copies

    if len(languages) > 1:
        raise click.UsageError("a test copy takes at most one --language")
    split = [address.strip() for value in addresses for address in value.split(",") if address.strip()]
    with session() as db:
        results = send_test_copies(db, settings=settings(), issue_path=issue_path, addresses=split,
                                   language=languages[0] if languages else None)
    for address, reply in results:
        output.echo(f"test copy to {address}: {reply}")
    if any(reply.startswith("not sent") for _, reply in results):
        raise SendError("some test copies were not sent")


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) asks the send to stop after the messages in flight; a second Ctrl-C interrupts."""
    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        output.echo("Stopping after the messages in flight (Ctrl-C again to interrupt)...")

    try:
        previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signal handling
        yield
        return
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _deliver(send_id: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mailer.delivery.engine import deliver
    from mailer.store.models import SendStatus

    stop = threading.Event()
    columns = (TextColumn("send {task.fields[send]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sent {task.fields[sent]} · deferred {task.fields[deferred]} · failed {task.fields[failed]}"
                          " · {task.fields[rate]:.0f}/s · {task.fields[left]}"))
    with _ctrl_c_stops(stop), Progress(*columns, console=output.get_console(), transient=True) as bar:
        task = bar.add_task("send", total=None, send=send_id, sent=0, deferred=0, failed=0, rate=0.0, left="")

        def show(progress: SendProgress) -> None:
            counts = progress.counts
            left = progress.seconds_left
            bar.update(task, total=progress.total, completed=progress.done, sent=counts.get("sent", 0),
                       deferred=counts.get("deferred", 0), failed=counts.get("failed", 0), rate=progress.rate,
                       left=f"{left:.0f} s left" if left is not None else "")

        report = deliver(settings(), send_id, stop=stop, on_progress=show)
    _print_report(report)
    resume = f"`mailer sends resume {send_id}`"
    if report.status == SendStatus.paused and not report.paused_by_fault:  # a person asked: done as asked
        output.echo(f"Send {send_id} paused; resume with {resume}")
        return
    if report.status == SendStatus.paused and report.resume_at:
        raise SendError(f"send {send_id} is paused; `mailer run` resumes it at {_local(report.resume_at)}, "
                        f"or resume it now with {resume}")
    if report.status == SendStatus.paused:
        raise SendError(f"send {send_id} is paused; fix the cause, then resume with {resume}")
    if report.status == SendStatus.sending and report.counts.get("queued"):
        raise SendError(f"send {send_id} is not finished; continue with {resume}")


def _local(at: datetime) -> str:
    """A time stored in UTC as the people using these settings read it: `2026-12-01 12:15 GMT`."""
    from mailer.schedule.times import Moment, zone

    return Moment(at, zone(settings().timezone)).short


def _print_report(report: SendReport, bounces: dict[str, int] | None = None) -> None:
    said = [report.note] if report.note else []
    if report.resume_at:
        said.append(f"resumes automatically at {_local(report.resume_at)}")
    output.echo(output.styled(f"Send {report.send_id}", "bold"), f": {report.title} — {report.status}"
                + (f" ({'; '.join(said)})" if said else ""))
    table = output.table("language", *report.counts, "total")
    for language, counts in sorted(report.by_language.items()):
        table.add_row(language, *(str(counts.get(status, 0)) for status in report.counts), str(sum(counts.values())))
    table.add_row("all", *(str(n) for n in report.counts.values()), str(report.total), style="bold")
    output.show(table)
    if report.failures:
        failures = output.table("failed address", "server's reply", title="Failures", wrap=("server's reply",))
        for address, reply in report.failures:
            failures.add_row(address, reply)
        output.show(failures)
    if bounces is not None:
        output.echo("Bounces: " + ", ".join(f"{n} {kind}" for kind, n in bounces.items()))
    times = []
    if report.started_at:
        times.append(f"started {report.started_at:%Y-%m-%d %H:%M:%S} UTC")
    if report.finished_at:
        took = f" ({(report.finished_at - report.started_at).total_seconds():.0f} s)" if report.started_at else ""
        times.append(f"finished {report.finished_at:%Y-%m-%d %H:%M:%S} UTC{took}")
    if report.sent_now:
        times.append(f"this run: {report.sent_now} sent in {report.elapsed:.1f} s ({report.rate:.0f}/s)")
    if report.next_retry_at and report.status == "sending":
        times.append(f"next retry {report.next_retry_at:%Y-%m-%d %H:%M} UTC")
    if times:
        output.echo("; ".join(times))


@group(examples=["mailer sends list", "mailer sends show 12"])
def sends() -> None:
    """Look at and control sends."""


@sends.command("list", examples=["mailer sends list", "mailer sends list --limit 10"])
@click.option("--limit", default=50, show_default=True, metavar="N", help="How many of the latest sends.")
def list_command(limit: int) -> None:
    """The latest sends with their status and progress (times in UTC: scheduled, else created).

    A send paused after faults says when `mailer run` resumes it (local time).
    """
    from mailer.delivery.report import status_counts
    from mailer.delivery.sends import list_sends
    from mailer.store.models import stored_id

    table = output.table("id", "status", "title", "when (UTC)", "sent", "to go", "failed", wrap=("title",))
    resuming = []
    with session() as db:
        for item in list_sends(db, limit=limit):
            counts = status_counts(db, send_id=stored_id(item))
            table.add_row(str(item.id), str(item.status), item.title, f"{item.scheduled_at or item.created_at:%Y-%m-%d %H:%M}",
                          str(counts["sent"]), str(counts["queued"] + counts["deferred"]), str(counts["failed"]))
            if item.resume_at:
                resuming.append(f"Send {item.id} resumes automatically at {_local(item.resume_at)}.")
    output.show(table)
    for line in resuming:
        output.echo(line)


@sends.command(examples=["mailer sends show 12"])
@send_id_argument()
def show(send_id: int) -> None:
    """Counts per status and language, failures, bounces, timings, and what the issue did.

    What it did, by language: delivered, bounced (hard, soft), complaints, readers who
    left after it (one-click, the page, by email) and who changed their preferences
    through its links. Counts only; nobody is tracked.
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
    table = output.table("what this issue did", *languages, "all", title="After this issue (counts only, nobody tracked)")
    for figure in FIGURES:
        if figure == "left: other" and not effects.total(figure):
            continue
        table.add_row(figure, *(str(effects.count(figure, language)) for language in languages),
                      str(effects.total(figure)))
    output.show(table)


@sends.command(examples=["mailer sends links 12"])
@send_id_argument()
def links(send_id: int) -> None:
    """How often each link of an issue was followed (with link_counts = true): totals, never who."""
    from mailer.delivery.clicks import link_totals

    with session() as db:
        totals = link_totals(db, send_id=send_id)
    table = output.table("#", "link", "followed", title=f"Links of send {send_id}", wrap=("link",))
    for position, url, clicks in totals:
        table.add_row(str(position), url, str(clicks))
    output.show(table)
    if not settings().link_counts:
        output.echo("link_counts is off in the settings: links of new sends are not counted.")


@sends.command(examples=["mailer sends pause 12"])
@send_id_argument()
def pause(send_id: int) -> None:
    """Pause a send; a process sending it stops after the messages in flight (one per connection).

    A send paused after faults stays paused: `mailer run` no longer resumes it by itself.
    """
    from mailer.delivery.sends import set_status
    from mailer.store.models import SendStatus

    with session() as db:
        set_status(db, send_id=send_id, status=SendStatus.paused, note="paused by hand")
    output.echo(f"Send {send_id} paused. Continue with: mailer sends resume {send_id}")


@sends.command(examples=["mailer sends resume 12"])
@send_id_argument()
@insecure_links_option
def resume(send_id: int, allow_insecure_links: bool) -> None:
    """Continue a paused, stopped or interrupted send here, from where it stopped; each subscriber still gets it once."""
    from mailer.publiclinks import require_usable_links

    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)
    _deliver(send_id)


@sends.command(examples=["mailer sends cancel 12"])
@send_id_argument()
def cancel(send_id: int) -> None:
    """Cancel a send for good; whatever was not sent yet never will be."""
    from mailer.delivery.sends import set_status
    from mailer.store.models import SendStatus

    with session() as db:
        set_status(db, send_id=send_id, status=SendStatus.cancelled, note="cancelled by hand")
    output.echo(f"Send {send_id} cancelled.")


@sends.command(examples=["mailer sends unpublish 12"])
@send_id_argument()
def unpublish(send_id: int) -> None:
    """Withdraw the issue of SEND_ID from the public archive and feeds (every send of that issue).

    Its web version answers "not found" from then on.
    """
    _publish(send_id, published=False)


@sends.command(examples=["mailer sends publish 12"])
@send_id_argument()
def publish(send_id: int) -> None:
    """Put an issue withdrawn with `mailer sends unpublish` back in the archive."""
    _publish(send_id, published=True)


def _publish(send_id: int, *, published: bool) -> None:
    from mailer.delivery.sends import get_send
    from mailer.store.archive import set_published

    with session() as db:
        ids = set_published(db, send_id=send_id, published=published)
        slug = get_send(db, send_id=send_id).issue_slug
        db.commit()
    which = f"send{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"
    if published:
        output.echo(f"Issue {slug} ({which}) is in the archive again.")
    else:
        output.echo(f"Issue {slug} ({which}) withdrawn from the archive and feeds. "
                    f"Put it back with: mailer sends publish {send_id}")


@command(examples=["mailer worker", "mailer worker --send 12 --once"])
@click.option("--send", "send_id", type=click.IntRange(min=1), metavar="SEND_ID", help="Work only on this send.")
@click.option("--once", is_flag=True, help="Exit when nothing is due instead of waiting for more.")
def worker(send_id: int | None, once: bool) -> None:
    """Help send with PostgreSQL: claim batches of any send in progress (run several, anywhere)."""
    from mailer.delivery.worker import run_worker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sent = run_worker(settings(), send_id=send_id, once=once, stop=stop,
                      on_report=lambda report: output.echo(str(report)))
    output.echo(f"Worker done: {output.plural(sent, 'message')} sent.")


@group(examples=["mailer dkim keygen --selector news2026"])
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command(examples=["mailer dkim keygen", "mailer dkim keygen --selector news2026 --out keys"])
@click.option("--selector", default="mailer", show_default=True, help="Name of the key in DNS.")
@click.option("--out", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("dkim"),
              show_default=True, metavar="FOLDER", help="Folder for the key files.")
def keygen(selector: str, folder: Path) -> None:
    """Write a 2048-bit RSA key pair and print the DNS record to publish."""
    from mailer.delivery.dkim import generate_key

    domain = settings().sender_domain
    private, public, record = generate_key(folder, selector)
    output.echo(f"Wrote {private} (keep it private) and {public}.")
    output.echo("Publish this DNS record:")
    output.echo(f'{selector}._domainkey.{domain} IN TXT "{record}"')
    output.echo("(In a zone file, split the quoted value into strings of at most 255 characters.)")
    output.echo("Then set in mailer.toml:")
    output.echo(f'dkim_selector = "{selector}"\ndkim_private_key = "{private}"')
