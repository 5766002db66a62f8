"""What every command module shares: settings and sessions made once per run, and the shared options.

Command modules import only click and this module at their top, and import the rest
of mailer inside the commands, so `--help` of any command answers at once. The
conventions every command follows are in docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # the store and the settings are imported only by commands that use them
    from rich.console import Console
    from sqlalchemy import Engine
    from sqlmodel import Session

    from mailer.config import Settings

CONFIG_KEY = "mailer.config"  # where the global --config option keeps its value (root context's meta)
LANGUAGES = ("en", "cy")
LANGUAGES_OR_BOTH = ("en", "cy", "both")
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")

# What a click option or argument decorates: the command's function (or a command already made).
Decorated = TypeVar("Decorated", bound="Callable[..., Any] | click.Command")


def config_option_value() -> Path | None:
    """The settings file given with `mailer --config FILE`, if any."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get(CONFIG_KEY) if ctx else None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings for this command run (a command runs in its own process)."""
    from mailer.config import load_settings

    return load_settings(config_option_value())


def open_store() -> Engine:
    """An engine on the configured database, refused (`DatabaseOutOfDate`) if its schema is behind."""
    from mailer.store.db import make_engine, require_current

    engine = make_engine(settings().database_url)
    require_current(engine)
    return engine


@contextmanager
def session() -> Iterator[Session]:
    """A session on the configured, up-to-date database; the caller commits."""
    from mailer.store.db import new_session

    engine = open_store()
    try:
        with new_session(engine) as db_session:
            yield db_session
    finally:
        engine.dispose()


def __getattr__(name: str) -> Console:
    """`console`: the shared console of `mailer.cli.output` (made on first use)."""
    if name == "console":
        from mailer.cli.output import get_console

        return get_console()
    raise AttributeError(name)


class WithExamples:
    """A command whose help ends with examples, one command line each, shown as written."""

    def __init__(self, *args: Any, examples: Sequence[str] = (), **kwargs: Any) -> None:
        self.examples = tuple(examples)
        super().__init__(*args, **kwargs)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)  # type: ignore[misc]
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples:
                    formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


class Command(WithExamples, click.Command):
    """A command with examples in its help: `@group.command(examples=[...])`."""


class Group(WithExamples, click.Group):
    """A group of commands with examples, that suggests the nearest command for a mistyped one."""

    command_class = Command
    group_class = type  # subgroups made with @group.group() are Groups too

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None


def group(**attrs: Any) -> Callable[[Callable[..., Any]], Group]:
    """`@click.group` with examples and suggestions: how every top-level group is declared."""
    return click.group(cls=Group, **attrs)


def command(**attrs: Any) -> Callable[[Callable[..., Any]], Command]:
    """`@click.command` with examples: how every top-level command is declared."""
    return click.command(cls=Command, **attrs)


# ---- options and arguments shared by commands: the same name, placeholder and help everywhere ----

ISSUE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def issue_argument(*, many: bool = False, required: bool = True) -> Callable[[Decorated], Decorated]:
    """ISSUE (one YAML issue file) or ISSUE... (one or more, e.g. `issues/*.yaml`).

    With many, a missing file is reported beside the others' results, not instead of them.
    """
    if many:
        return click.argument("issue_paths", metavar="ISSUE...", nargs=-1, required=True,
                              type=click.Path(dir_okay=False, path_type=Path))
    return click.argument("issue_path", metavar="ISSUE", type=ISSUE_FILE, required=required)


def send_id_argument() -> Callable[[Decorated], Decorated]:
    """SEND_ID: the number `mailer sends list` shows."""
    return click.argument("send_id", metavar="SEND_ID", type=click.IntRange(min=1))


topic_option = click.option(
    "--topic", "topics", multiple=True, metavar="TOPIC",
    help="Only subscribers of this topic (repeat for several; default: the issue's topics, else everyone).")
language_option = click.option(
    "--language", "languages", multiple=True, type=click.Choice(LANGUAGES_OR_BOTH),
    help="Only subscribers who chose this language (repeat; default: all).")
insecure_links_option = click.option(
    "--allow-insecure-links", is_flag=True,
    help="Send even though base_url is http://, loopback or private (links readers cannot use).")
tz_option = click.option(
    "--tz", metavar="ZONE", help="Time zone of the time given, e.g. Europe/London (default: the timezone setting).")


def at_option(help_text: str = 'Local date and time, e.g. "2026-12-01 09:00".') -> Callable[[Decorated], Decorated]:
    return click.option("--at", "at", required=True, metavar="WHEN", help=help_text)
