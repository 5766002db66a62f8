"""`mailer welcome show` and `mailer welcome test`: the welcome email new readers get once."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli import output
from mailer.cli.common import LANGUAGES_OR_BOTH, group, session, settings
from mailer.errors import MailerError

LANGUAGE = click.Choice(LANGUAGES_OR_BOTH)


def welcome_path() -> Path:
    """The welcome issue named in the settings; a clear error when none is."""
    if not settings().welcome_issue:
        raise MailerError('no welcome email is set: add welcome_issue = "issues/welcome.yaml" to the settings '
                          "(write it like an issue; see docs/welcome.md)")
    return Path(settings().welcome_issue)


@group(examples=["mailer welcome show --language cy", "mailer welcome test you@example.org --language cy"])
def welcome() -> None:
    """The welcome email: an issue file sent once to each new reader, in their language."""


@welcome.command(examples=["mailer welcome show", "mailer welcome show --language cy"])
@click.option("--language", type=LANGUAGE, default=None, help="Show only this variant (default: every one).")
def show(language: str | None) -> None:
    """Show the welcome email as new readers get it now, and how many have had it."""
    from mailer.content import Personaliser, load_issue
    from mailer.content.build import sample_values
    from mailer.delivery.report import status_counts
    from mailer.delivery.sends import render_variants
    from mailer.delivery.welcome import open_sends
    from mailer.store.models import stored_id

    path = welcome_path()
    variants = render_variants(settings(), load_issue(path))  # IssueError names every problem
    output.echo(f"Welcome email: {path} (valid; variants: {', '.join(variants)})")
    with session() as db:
        current = next(iter(open_sends(db)), None)
        if current is None:
            output.echo("No reader has been welcomed yet: the welcome send is made at the next confirmation.")
        else:
            counts = status_counts(db, send_id=stored_id(current))
            waiting = counts["queued"] + counts["deferred"]
            output.echo(f"Welcome send {current.id}: {counts['sent']} sent, {waiting} waiting, "
                        f"{counts['failed']} failed (mailer sends show {current.id}).")
    for name, rendered in variants.items():
        if language and name != language:
            continue
        values = sample_values(settings(), name)  # as a made-up reader gets it
        personalised = Personaliser(rendered)
        output.echo("")
        output.echo(output.styled(f"{name}: {personalised.subject(values)}", "bold"))
        output.echo(personalised.text(values))


@welcome.command(examples=["mailer welcome test you@example.org --language cy"])
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@click.option("--language", type=LANGUAGE, default=None,
              help="Which variant (default: a subscriber's own language, else the first).")
def test(addresses: tuple[str, ...], language: str | None) -> None:
    """Send a copy of the welcome email marked "[TEST]" to ADDRESS; records nothing."""
    from mailer.delivery.testcopy import send_test_copies

    path = welcome_path()
    with session() as db:
        results = send_test_copies(db, settings=settings(), issue_path=path, addresses=list(addresses),
                                   language=language)
    for address, reply in results:
        output.echo(f"test copy to {address}: {reply}")
    if any(reply.startswith("not sent") for _, reply in results):
        raise MailerError("some test copies were not sent")
