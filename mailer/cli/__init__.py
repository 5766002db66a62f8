"""The `mailer` command. Commands are thin: parse options, call a service, print.

Subcommands live in sibling modules and are imported only when used, and `mailer
--help` lists them from the table below without importing any: so `--help` answers
at once and `mailer issue validate` does not pay for the web framework. A test
checks that each short help here is the command's own.
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path

import click

from mailer import __version__
from mailer.cli.common import CONFIG_KEY, Group, command
from mailer.errors import MailerError

# command name -> ("module:attribute" of a click command or group, its short help)
COMMANDS = {
    "init": ("mailer.cli:init", "Write a commented mailer.toml with a freshly generated secret key."),
    "config": ("mailer.cli.config:config", "Show the settings in force and check them before a first send."),
    "issue": ("mailer.cli.issue:issue", "Write, check and build newsletter issues (YAML files in issues/)."),
    "db": ("mailer.cli.store:db", "The database: create it and keep its schema up to date."),
    "subscribers": ("mailer.cli.store:subscribers", "Subscribers: add, list, import, export, remove and forget."),
    "topics": ("mailer.cli.store:topics", "Topics: the named lists (news, events...) subscribers choose from."),
    "send": ("mailer.cli.send:send", "Send ISSUE to its audience, each subscriber exactly once."),
    "sends": ("mailer.cli.send:sends", "Look at and control sends."),
    "worker": ("mailer.cli.send:worker", "Help send with PostgreSQL: claim batches of any send in progress (run several, anywhere)."),
    "dkim": ("mailer.cli.send:dkim", "DKIM signing keys."),
    "schedule": ("mailer.cli.schedule:schedule", "Send an issue at a set time, and manage what is scheduled."),
    "run": ("mailer.cli.schedule:run", "Run the scheduler until stopped (and serve the subscriber pages)."),
    "serve": ("mailer.cli.web:serve", "Serve the subscriber pages: unsubscribe, preferences, subscribe, archive."),
    "bounces": ("mailer.cli.bounces:bounces", "Bounces and complaints: stop mailing addresses that cannot or will not take mail."),
    "demo": ("mailer.cli.demo:demo", "Build, import, send to a local outbox, and serve: the whole flow, safely."),
    "stats": ("mailer.cli.stats:stats", "Joins, leaves, bounces and complaints per month (UTC), as a small chart."),
    "welcome": ("mailer.cli.welcome:welcome", "The welcome email: an issue file sent once to each new reader, in their language."),
    "forms": ("mailer.cli.forms:forms", "Subscribe forms for other websites (their sites go in the form_origins setting)."),
}


class LazyGroup(Group):
    """The top group: commands imported on first use, user mistakes as one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[name][0].partition(":")
        found: click.Command = getattr(importlib.import_module(module_name), attribute)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMANDS, without importing every command module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short_help) for name, (_, short_help) in sorted(COMMANDS.items())])

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            if ctx.meta.get("mailer.debug"):  # what lies behind the one line (a database or disk error, say)
                traceback.print_exception(exc)
            from mailer.cli.output import printable

            raise click.ClickException(printable(str(exc))) from None


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[CONFIG_KEY] = value


@click.group(cls=LazyGroup, examples=[
    "mailer init && mailer db upgrade",
    "mailer --config /srv/news/mailer.toml sends list",
])
@click.version_option(__version__, prog_name="mailer")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE", expose_value=False,
              callback=_remember_config, is_eager=True,
              help="Settings file to use (default: $MAILER_CONFIG, else ./mailer.toml). "
                   "Relative paths in it are relative to its folder.")
@click.option("--debug", is_flag=True, help="After an error's one line, show the traceback behind it.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Newsletter toolkit: write issues in YAML, send them to subscribers, exactly once.

    Every command has --help with examples; conventions are in docs/cli.md.
    """
    ctx.meta["mailer.debug"] = debug


@command(examples=["mailer init", "mailer --config /srv/news/mailer.toml init"])
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Where to write the settings (default: the --config file, $MAILER_CONFIG or ./mailer.toml).")
def init(path: Path | None) -> None:
    """Write a commented mailer.toml with a freshly generated secret key."""
    from mailer.cli.common import config_option_value
    from mailer.cli.output import echo
    from mailer.config import config_path, write_sample

    path = path or config_path(config_option_value())
    write_sample(path)
    echo(f"Wrote {path}. Edit the sender, base_url and postal_address before the first send.")
