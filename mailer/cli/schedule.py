"""`mailer schedule ...` (plan sends) and `mailer run` (the long-running runner that fires them)."""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli import output
from mailer.cli.common import (
    Command,
    Group,
    at_option,
    command,
    insecure_links_option,
    issue_argument,
    language_option,
    open_store,
    send_id_argument,
    session,
    settings,
    topic_option,
    tz_option,
)

if TYPE_CHECKING:  # the scheduler and the store are imported only by commands that use them
    from sqlmodel import Session

    from mailer.schedule.rules import Rule
    from mailer.store.models import Send

ISSUE_COMMAND = "issue"  # the hidden command behind `mailer schedule ISSUE --at WHEN`
ISSUE_USAGE = "ISSUE --at WHEN [OPTIONS]"


class ScheduleGroup(Group):
    """`mailer schedule ISSUE --at ...` schedules an issue; `mailer schedule COMMAND` manages schedules.

    Anything that is not one of the commands (an issue file, or an option such as --at)
    goes to the hidden `issue` command, whose options the group's help shows as its own.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and _for_the_issue_command(args[0]):
            args = [ISSUE_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, ISSUE_USAGE)
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="   or: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        scheduling = self.commands[ISSUE_COMMAND]
        rows = [record for param in scheduling.params
                if isinstance(param, click.Option) and (record := param.get_help_record(ctx)) is not None]
        with formatter.section("Options for scheduling ISSUE"):
            formatter.write_dl(rows)
        super().format_options(ctx, formatter)


class ScheduleIssue(Command):
    """The hidden command behind `mailer schedule ISSUE --at WHEN`, whose usage is the group's."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.parent.command_path if ctx.parent else ctx.command_path, ISSUE_USAGE)


def _for_the_issue_command(arg: str) -> bool:
    if arg.startswith("-"):
        return arg not in ("--help", "-h")
    return Path(arg).exists() or arg.endswith((".yaml", ".yml")) or "/" in arg


@click.group(cls=ScheduleGroup, examples=[
    'mailer schedule issues/2026-12-news.yaml --at "2026-12-01 09:00" --topic news',
    "mailer schedule list",
])
def schedule() -> None:
    """Send an issue at a set time, and manage what is scheduled.

    The issue is built and frozen now, so a broken issue is caught today; after editing it,
    `mailer schedule refresh SEND_ID`. Times are local (--tz, default from mailer.toml).
    Nothing is sent unless `mailer run` is running.
    """


@schedule.command(ISSUE_COMMAND, cls=ScheduleIssue, hidden=True, examples=['mailer schedule issues/2026-12-news.yaml --at "2026-12-01 09:00"'])
@issue_argument(required=False)
@at_option()
@tz_option
@topic_option
@language_option
@click.option("--again", is_flag=True, help="Schedule it even though this issue was scheduled or sent before.")
@insecure_links_option
def schedule_issue(issue_path: Path | None, at: str, tz: str | None, topics: tuple[str, ...], languages: tuple[str, ...],
                   again: bool, allow_insecure_links: bool) -> None:
    """Schedule ISSUE to go out at WHEN."""
    from mailer.publiclinks import require_usable_links
    from mailer.schedule import service
    from mailer.schedule.times import parse_wall_time

    if issue_path is None:
        raise click.UsageError('say which issue to schedule: mailer schedule ISSUE --at WHEN, '
                               'e.g. mailer schedule issues/2026-12-news.yaml --at "2026-12-01 09:00"',
                               ctx=click.get_current_context().parent)
    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)
    with session() as db:
        send, moment = service.schedule_send(db, settings=settings(), issue_path=issue_path, when=parse_wall_time(at), tz=tz,
                                             topics=topics, languages=languages, again=again)
        output.echo(f"Scheduled send {send.id}: {send.title} ({issue_path})")
        output.echo(f"  at      {moment}")
        output.echo(f"  to      {_audience(send)}")
        output.echo(f"  content frozen now, version {_version(send)}; after editing the issue: mailer schedule refresh {send.id}")
        _warn_without_runner(db)


@schedule.command("list", examples=["mailer schedule list"])
def list_() -> None:
    """Scheduled, missed and running sends, and the recurring rules, in local time."""
    from mailer.schedule import rules, service
    from mailer.schedule.times import Moment, zone
    from mailer.store.models import utcnow

    tz = zone(settings().timezone)
    now = utcnow()
    with session() as db:
        sends = service.planned(db)
        _warn_without_runner(db)
    found = rules.list_rules(settings(), open_store())
    if not sends and not found:
        output.echo("Nothing scheduled.")
        return
    if sends:
        table = output.table("id", "status", f"when ({tz.key})", "issue", "audience", "version",
                             wrap=("status", "issue", "audience"))
        for send in sends:
            at = Moment(send.scheduled_at, tz).short if send.scheduled_at else "-"
            table.add_row(str(send.id), _status(send, now), at, send.title, _audience(send), _version(send))
        output.show(table)
    if found:
        table = output.table("rule", "when", "next run", "audience", "warns", wrap=("when", "audience", "warns"))
        for rule, upcoming in found:
            table.add_row(rule.name, f"{rule.when} ({rule.tz})", upcoming.short if upcoming else "-",
                          _rule_audience(rule), ", ".join(rule.notify))
        output.show(table)


@schedule.command(examples=["mailer schedule cancel 12"])
@send_id_argument()
def cancel(send_id: int) -> None:
    """Cancel a scheduled (or missed) send."""
    from mailer.schedule import service

    with session() as db:
        send = service.cancel_send(db, send_id=send_id)
    output.echo(f"Cancelled send {send.id} ({send.title}).")


@schedule.command(examples=['mailer schedule move 12 --at "2026-12-02 09:00"',
                            'mailer schedule move 12 --at "2026-12-02 09:00" --tz Europe/Paris'])
@send_id_argument()
@at_option('New local date and time, e.g. "2026-12-02 09:00".')
@tz_option
def move(send_id: int, at: str, tz: str | None) -> None:
    """Give a scheduled (or missed) send a new time."""
    from mailer.schedule import service
    from mailer.schedule.times import parse_wall_time

    with session() as db:
        moment = service.move_send(db, settings=settings(), send_id=send_id, when=parse_wall_time(at), tz=tz)
        output.echo(f"Send {send_id} now goes at {moment}")
        _warn_without_runner(db)


@schedule.command(examples=["mailer schedule refresh 12"])
@send_id_argument()
def refresh(send_id: int) -> None:
    """Rebuild a scheduled send from its issue file, after the editor changed it."""
    from mailer.schedule import service

    with session() as db:
        old, new = service.refresh_send(db, settings=settings(), send_id=send_id)
    if old == new:
        output.echo(f"Send {send_id}: the issue has not changed (version {new[:8]}).")
    else:
        output.echo(f"Send {send_id}: rebuilt from the issue file; version {old[:8]} -> {new[:8]} will go.")


@schedule.group(examples=['mailer schedule recurring add "first tue 09:00" --name monthly --notify editor@example.org',
                          "mailer schedule recurring list"])
def recurring() -> None:
    """Monthly rules: send the issue dated this month if it is ready, otherwise warn the editors."""


@recurring.command("add", examples=[
    'mailer schedule recurring add "first tue 09:00" --name monthly --notify editor@example.org',
    'mailer schedule recurring add "last day 16:00" --name digest --notify a@example.org --topic news --issues digests',
])
@click.argument("when", metavar="WHEN")
@click.option("--name", required=True, help="A short name for the rule, e.g. monthly.")
@click.option("--notify", multiple=True, required=True, metavar="ADDRESS", help="Editor to warn when no issue is ready (repeat).")
@click.option("--issues", "issues_dir", default="issues", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="FOLDER", help="Folder of issue files.")
@tz_option
@topic_option
@language_option
def recurring_add(when: str, name: str, notify: tuple[str, ...], issues_dir: Path, tz: str | None,
                  topics: tuple[str, ...], languages: tuple[str, ...]) -> None:
    """Add a rule firing at WHEN each month: "first tue 09:00", "last fri 17:30", "day 1 09:00", "last day 16:00"."""
    from mailer.schedule import rules
    from mailer.store.models import utcnow

    rule = rules.Rule(name=name, when=when, tz=tz or settings().timezone, issues_dir=str(issues_dir.resolve()),
                      notify=notify, topics=topics, languages=languages)
    upcoming = rules.add_rule(settings(), open_store(), rule, now=utcnow())
    output.echo(f"Rule {name}: {when} ({rule.tz}); first run {upcoming}.")
    output.echo(f"  sends the issue in {rule.issues_dir} dated that month to {_rule_audience(rule)}; otherwise warns {', '.join(notify)}")


@recurring.command("list", examples=["mailer schedule recurring list"])
def recurring_list() -> None:
    """The recurring rules and their next run."""
    from mailer.schedule import rules

    found = rules.list_rules(settings(), open_store())
    for rule, upcoming in found:
        output.echo(f"{rule.name}: {rule.when} ({rule.tz}), next {upcoming.short if upcoming else '-'}; "
                    f"issues {rule.issues_dir}; to {_rule_audience(rule)}; warns {', '.join(rule.notify)}")
    if not found:
        output.echo("No recurring rules.")


@recurring.command("remove", examples=["mailer schedule recurring remove monthly"])
@click.argument("name")
def recurring_remove(name: str) -> None:
    """Remove the rule called NAME."""
    from mailer.schedule import rules

    rules.remove_rule(settings(), open_store(), name)
    output.echo(f"Removed rule {name}.")


@command(examples=["mailer run", "mailer run --no-web"])
@click.option("--no-web", is_flag=True, help="Do not serve the subscriber pages (when `mailer serve` runs them).")
@insecure_links_option
def run(no_web: bool, allow_insecure_links: bool) -> None:
    """Run the scheduler until stopped (and serve the subscriber pages).

    Starts scheduled sends on time, resumes interrupted ones, retries, reads bounces.
    SIGTERM finishes the message in flight and leaves the rest queued.
    """
    from mailer.publiclinks import require_usable_links
    from mailer.schedule.runner import Runner

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


def _rule_audience(rule: Rule) -> str:
    return ", ".join(rule.topics) or "the issue's own topics"


def _version(send: Send) -> str:
    return send.content_hash[:8]


def _status(send: Send, now: datetime) -> str:
    from mailer.store.models import SendStatus

    if send.status == SendStatus.scheduled and send.scheduled_at and send.scheduled_at < now:
        return "due"
    return f"{send.status}: {send.note}" if send.status == SendStatus.missed and send.note else str(send.status)


def _warn_without_runner(db: Session) -> None:
    from mailer.schedule import service

    if service.runner(db) is None:
        output.echo("Note: no `mailer run` is running against this database; scheduled sends go only while it runs.")
