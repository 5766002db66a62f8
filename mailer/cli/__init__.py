"""The `mailer` command. Commands are thin: parse options, call a service, print.

Subcommands live in sibling modules and are imported only when used, so
`mailer issue validate` does not pay for importing the web framework.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from mailer import __version__
from mailer.config import config_path, write_sample
from mailer.errors import MailerError

# command name -> "module:attribute" of a click command or group
COMMANDS = {
    "init": "mailer.cli:init",
    "issue": "mailer.cli.issue:issue",
    "db": "mailer.cli.store:db",
    "subscribers": "mailer.cli.store:subscribers",
    "topics": "mailer.cli.store:topics",
    "send": "mailer.cli.send:send",
    "sends": "mailer.cli.send:sends",
    "worker": "mailer.cli.send:worker",
    "dkim": "mailer.cli.send:dkim",
    "schedule": "mailer.cli.schedule:schedule",
    "run": "mailer.cli.schedule:run",
    "serve": "mailer.cli.web:serve",
    "bounces": "mailer.cli.bounces:bounces",
    "demo": "mailer.cli.demo:demo",
    "stats": "mailer.cli.stats:stats",
    "welcome": "mailer.cli.welcome:welcome",
    "forms": "mailer.cli.forms:forms",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, and whose errors are clean."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="mailer")
def main() -> None:
    """Newsletter toolkit: write issues in YAML, send them to subscribers, exactly once."""


@click.command()
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the settings (default: mailer.toml, or $MAILER_CONFIG).")
def init(path: Path | None) -> None:
    """Write a commented mailer.toml with a freshly generated secret key."""
    path = path or config_path()
    try:
        write_sample(path)
    except MailerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}. Edit the sender, base_url and postal_address before the first send.")
