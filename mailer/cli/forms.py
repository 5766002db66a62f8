"""`mailer forms snippet`: a subscribe form to paste into the organisation's own website."""

from __future__ import annotations

import click

from mailer.cli import output
from mailer.cli.common import LANGUAGES_OR_BOTH, group, session, settings


@group(examples=["mailer forms snippet --language cy --topic news"])
def forms() -> None:
    """Subscribe forms for other websites (their sites go in the form_origins setting)."""


@forms.command(examples=["mailer forms snippet --language cy --topic news > subscribe-form.html",
                         "mailer forms snippet --language both"])
@click.option("--language", type=click.Choice(LANGUAGES_OR_BOTH), default=None,
              help="The form's language; both puts bilingual_first (Welsh) first. Default: default_language.")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="Subscribe to this topic too (repeat); a hidden field, not a choice.")
def snippet(language: str | None, topics: tuple[str, ...]) -> None:
    """Print a plain, accessible HTML subscribe form for pasting into a web page.

    The form posts to base_url/subscribe. Add the site that shows it to form_origins
    (e.g. form_origins = ["https://www.example.org"]): posts from anywhere else are
    refused. Double opt-in and every limit apply as on our own page (docs/forms.md).
    """
    from mailer.store.topics import resolve_topics
    from mailer.web.snippet import form_snippet

    with session() as db:
        resolve_topics(db, topics)  # an unknown topic is refused by name
    click.echo(form_snippet(settings(), language=language or settings().default_language, topics=topics))
    if not settings().form_origins:
        output.echo("Note: form_origins is empty, so posts from other sites are refused until you add the "
                    "site's origin (e.g. https://www.example.org) to it in the settings.", err=True)
