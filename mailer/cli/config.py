"""`mailer config show` and `mailer config check`: which settings are in force, and will they work."""

from __future__ import annotations

import click

from mailer.cli.common import config_option_value, group, settings


@group(examples=["mailer config show", "mailer config check"])
def config() -> None:
    """Show the settings in force and check them before a first send."""


@config.command(examples=["mailer config show", "MAILER_WEB_PORT=8080 mailer config show"])
def show() -> None:
    """Every setting with its value and where it comes from (file, environment variable or default).

    Secrets are shown only as set or empty; passwords in URLs are masked.
    """
    from mailer.cli import output
    from mailer.config import config_path, origins, shown

    path = config_path(config_option_value())
    values = settings()
    output.echo(f"Settings file: {path.absolute()}{'' if path.exists() else ' (does not exist)'}")
    table = output.table("setting", "value", "from", wrap=("value", "from"))
    for key, origin in origins(path).items():
        table.add_row(key, shown(key, getattr(values, key)), str(origin))
    output.show(table)


@config.command(examples=["mailer config check", "mailer --config /srv/news/mailer.toml config check"])
def check() -> None:
    """Check what a first send needs: the database, the SMTP server, base_url, the sender and the DKIM key.

    Connects to the database and the SMTP server (STARTTLS and login as configured),
    and prints the DKIM DNS record to compare with the published one. Sends nothing.
    Exits 1 if any check failed.
    """
    from mailer.checks import Status, run_checks
    from mailer.cli import output

    colours = {Status.ok: "green", Status.warning: "yellow", Status.failed: "red"}
    failed = 0
    for result in run_checks(settings()):
        failed += result.status == Status.failed
        output.echo(output.styled(f"{result.status:<7}", colours[result.status]), f"{result.name}: {result.detail}")
    if failed:
        raise click.exceptions.Exit(1)
