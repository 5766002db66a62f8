"""`mailer schedule ...` (plan sends) and `mailer run` (the long-running runner that fires them)."""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table
from sqlmodel import Session

from mailer.cli.common import console, open_store, session, settings
from mailer.cli.send import ISSUE_FILE, insecure_links_option, language_option, topic_option
from mailer.publiclinks import require_usable_links
from mailer.schedule import rules, service
from mailer.schedule.runner import Runner
from mailer.schedule.times import Moment, parse_wall_time, zone
from mailer.store.models import Send, SendStatus, utcnow

tz_option = click.option("--tz", metavar="ZONE", help="Time zone of the time given, e.g. Europe/London (default: the `timezone` setting).")


class ScheduleGroup(click.Group):
    """`mailer schedule ISSUE --at ...` schedules an issue; `mailer schedule COMMAND` manages schedules."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and _looks_like_issue(args[0]):
            args = ["issue", *args]
        return super().parse_args(ctx, args)


def _looks_like_issue(arg: str) -> bool:
    return not arg.startswith("-") and (Path(arg).exists() or arg.endswith((".yaml", ".yml")) or "/" in arg)


@click.group(cls=ScheduleGroup, subcommand_metavar="ISSUE --at WHEN [--tz ZONE] [--topic NAME]... | COMMAND [ARGS]...")
def schedule() -> None:
    """Send an issue at a set time: `mailer schedule issues/2026-12.yaml --at "2026-12-01 09:00" --topic news`.

    The issue is built and frozen now, so a broken issue is caught today; after editing it,
    `mailer schedule refresh ID`. Times are local (--tz, default from mailer.toml). Nothing is
    sent unless `mailer run` is running.
    """


@schedule.command("issue", hidden=True)
@click.argument("issue_path", metavar="ISSUE", type=ISSUE_FILE)
@click.option("--at", "at", required=True, metavar="WHEN", help='Local date and time, e.g. "2026-12-01 09:00".')
@tz_option
@topic_option
@language_option
@click.option("--again", is_flag=True, help="Schedule it even though this issue was scheduled or sent before.")
@insecure_links_option
def schedule_issue(issue_path: Path, at: str, tz: str | None, topics: tuple[str, ...], languages: tuple[str, ...],
                   again: bool, allow_insecure_links: bool) -> None:
    """Schedule ISSUE to go out at WHEN."""
    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)
    with session() as db:
        send, moment = service.schedule_send(db, settings=settings(), issue_path=issue_path, when=parse_wall_time(at), tz=tz,
                                             topics=topics, languages=languages, again=again)
        click.echo(f"Scheduled send {send.id}: {send.title} ({issue_path})")
        click.echo(f"  at      {moment}")
        click.echo(f"  to      {_audience(send)}")
        click.echo(f"  content frozen now, version {_version(send)}; after editing the issue: mailer schedule refresh {send.id}")
        _warn_without_runner(db)


@schedule.command("list")
def list_() -> None:
    """Scheduled, missed and running sends, and the recurring rules, in local time."""
    tz = zone(settings().timezone)
    now = utcnow()
    with session() as db:
        sends = service.planned(db)
        _warn_without_runner(db)
    found = rules.list_rules(settings(), open_store())
    if not sends and not found:
        click.echo("Nothing scheduled.")
        return
    if sends:
        table = Table("ID", "Status", box=None)
        table.add_column(f"When ({tz.key})", no_wrap=True)
        for column in ("Issue", "Audience", "Version"):
            table.add_column(column)
        for send in sends:
            at = Moment(send.scheduled_at, tz).short if send.scheduled_at else "-"
            table.add_row(str(send.id), _status(send, now), at, send.title, _audience(send), _version(send))
        console.print(table)
    if found:
        table = Table("Rule", "When", box=None)
        table.add_column("Next run", no_wrap=True)
        for column in ("Audience", "Warns"):
            table.add_column(column)
        for rule, upcoming in found:
            table.add_row(rule.name, f"{rule.when} ({rule.tz})", upcoming.short if upcoming else "-",
                          _rule_audience(rule), ", ".join(rule.notify))
        console.print(table)


@schedule.command()
@click.argument("send_id", metavar="ID", type=int)
def cancel(send_id: int) -> None:
    """Cancel a scheduled (or missed) send."""
    with session() as db:
        send = service.cancel_send(db, send_id=send_id)
    click.echo(f"Cancelled send {send.id} ({send.title}).")


@schedule.command()
@click.argument("send_id", metavar="ID", type=int)
@click.option("--at", "at", required=True, metavar="WHEN", help='New local date and time, e.g. "2026-12-02 09:00".')
@tz_option
def move(send_id: int, at: str, tz: str | None) -> None:
    """Give a scheduled (or missed) send a new time."""
    with session() as db:
        moment = service.move_send(db, settings=settings(), send_id=send_id, when=parse_wall_time(at), tz=tz)
        click.echo(f"Send {send_id} now goes at {moment}")
        _warn_without_runner(db)


@schedule.command()
@click.argument("send_id", metavar="ID", type=int)
def refresh(send_id: int) -> None:
    """Rebuild a scheduled send from its issue file, after the editor changed it."""
    with session() as db:
        old, new = service.refresh_send(db, settings=settings(), send_id=send_id)
    if old == new:
        click.echo(f"Send {send_id}: the issue has not changed (version {new[:8]}).")
    else:
        click.echo(f"Send {send_id}: rebuilt from the issue file; version {old[:8]} -> {new[:8]} will go.")


@schedule.group()
def recurring() -> None:
    """Monthly rules: send the issue dated this month if it is ready, otherwise warn the editors."""


@recurring.command("add")
@click.argument("when", metavar="WHEN")
@click.option("--name", required=True, help="A short name for the rule, e.g. monthly.")
@click.option("--notify", multiple=True, required=True, metavar="ADDRESS", help="Editor to warn when no issue is ready (repeat).")
@click.option("--issues", "issues_dir", default="issues", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of issue files.")
@tz_option
@topic_option
@language_option
def recurring_add(when: str, name: str, notify: tuple[str, ...], issues_dir: Path, tz: str | None,
                  topics: tuple[str, ...], languages: tuple[str, ...]) -> None:
    """Add a rule firing at WHEN each month: "first tue 09:00", "last fri 17:30", "day 1 09:00", "last day 16:00"."""
    rule = rules.Rule(name=name, when=when, tz=tz or settings().timezone, issues_dir=str(issues_dir.resolve()),
                      notify=notify, topics=topics, languages=languages)
    upcoming = rules.add_rule(settings(), open_store(), rule, now=utcnow())
    click.echo(f"Rule {name}: {when} ({rule.tz}); first run {upcoming}.")
    click.echo(f"  sends the issue in {rule.issues_dir} dated that month to {_rule_audience(rule)}; otherwise warns {', '.join(notify)}")


@recurring.command("list")
def recurring_list() -> None:
    """The recurring rules and their next run."""
    found = rules.list_rules(settings(), open_store())
    for rule, upcoming in found:
        click.echo(f"{rule.name}: {rule.when} ({rule.tz}), next {upcoming.short if upcoming else '-'}; "
                   f"issues {rule.issues_dir}; to {_rule_audience(rule)}; warns {', '.join(rule.notify)}")
    if not found:
        click.echo("No recurring rules.")


@recurring.command("remove")
@click.argument("name")
def recurring_remove(name: str) -> None:
    """Remove the rule called NAME."""
    rules.remove_rule(settings(), open_store(), name)
    click.echo(f"Removed rule {name}.")


@click.command()
@click.option("--no-web", is_flag=True, help="Do not serve the subscriber pages (when `mailer serve` runs them).")
@insecure_links_option
def run(no_web: bool, allow_insecure_links: bool) -> None:
    """Run the scheduler until stopped: starts scheduled sends on time, resumes interrupted ones,
    serves the subscriber pages. SIGTERM finishes the message in flight and leaves the rest queued."""
    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)  # before it starts any send
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runner = Runner(settings(), engine=open_store())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop.set())
    runner.run(web=not no_web)


def _audience(send: Send) -> str:
    topics = send.topics.replace(",", ", ") or "everyone"
    return f"{topics}; {send.languages.replace(',', ', ')}" if send.languages else topics


def _rule_audience(rule: rules.Rule) -> str:
    return ", ".join(rule.topics) or "the issue's own topics"


def _version(send: Send) -> str:
    return send.content_hash[:8]


def _status(send: Send, now: datetime) -> str:
    if send.status == SendStatus.scheduled and send.scheduled_at and send.scheduled_at < now:
        return "due"
    return f"{send.status}\n{send.note}" if send.status == SendStatus.missed and send.note else str(send.status)


def _warn_without_runner(db: Session) -> None:
    if service.runner(db) is None:
        click.echo("Note: no `mailer run` is running against this database; scheduled sends go only while it runs.")
