"""`mailer db`, `mailer subscribers` and `mailer topics`: the list, from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli import output
from mailer.cli.common import (
    LANGUAGES_OR_BOTH,
    SUBSCRIBER_STATUSES,
    group,
    insecure_links_option,
    open_store,
    session,
    settings,
)
from mailer.errors import StoreError

if TYPE_CHECKING:
    from mailer.store.csvio import ImportReport, LineResult

LANGUAGES = click.Choice(LANGUAGES_OR_BOTH, case_sensitive=False)
STATUSES = click.Choice(SUBSCRIBER_STATUSES, case_sensitive=False)
OUTCOME_COLOURS = {"added": "green", "updated": "cyan", "rejected": "red"}


def _secret_keys() -> list[str]:
    """Every key an erased address may have been hashed with (the current one first)."""
    return [settings().secret_key, *settings().old_secret_keys]


def _date(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


# ---- mailer db ---------------------------------------------------------------------------------


@group(examples=["mailer db upgrade", "mailer db current"])
def db() -> None:
    """The database: create it and keep its schema up to date."""


@db.command(examples=["mailer db upgrade"])
def upgrade() -> None:
    """Create the database if missing and apply every migration it has not had."""
    from mailer.store import db as store_db

    engine = store_db.make_engine(settings().database_url)
    before = store_db.current_revision(engine)
    store_db.upgrade(engine)
    after = store_db.current_revision(engine)
    engine.dispose()
    if before == after:
        output.echo(f"Database already up to date (revision {after}).")
    else:
        output.echo(f"Database upgraded from {before or 'empty'} to revision {after}.")


@db.command(examples=["mailer db current"])
def current() -> None:
    """Show the database's schema revision and the one this mailer expects."""
    from mailer.errors import DatabaseOutOfDate
    from mailer.store import db as store_db

    engine = store_db.make_engine(settings().database_url)
    revision = store_db.current_revision(engine)
    try:
        store_db.require_current(engine)
        state = "up to date"
    except DatabaseOutOfDate as exc:
        state = str(exc)
    finally:
        engine.dispose()
    output.echo(f"Database revision: {revision or 'none (empty database)'}; expected: {store_db.head_revision()} ({state}).")


@db.command(examples=["mailer db check"])
def check() -> None:
    """Compare the database with the models; fails if they differ (a missing migration)."""
    from mailer.store import db as store_db

    engine = open_store()
    differences = store_db.drift(engine)
    engine.dispose()
    if differences:
        lines = "\n".join(f"  {difference}" for difference in differences)
        raise StoreError(f"the database differs from the models (a migration is missing):\n{lines}")
    output.echo("Database matches the models.")


# ---- mailer topics -----------------------------------------------------------------------------


@group(examples=['mailer topics add news --description "Monthly news"', "mailer topics list"])
def topics() -> None:
    """Topics: the named lists (news, events...) subscribers choose from."""


def _flags(default: bool, public: bool) -> str:
    return ", ".join(["default"] * default + ["public" if public else "private"])


def _topic_texts(command: Callable[..., None]) -> Callable[..., None]:
    """What readers see of a topic, in English (or for every language) and in Welsh."""
    for option in reversed([
        click.option("--label", default=None, help="The topic's name as readers see it (default: TOPIC)."),
        click.option("--label-cy", default=None, help="The same in Welsh, for the Welsh pages."),
        click.option("--description", default=None, help="A sentence on what the topic brings, shown under its name."),
        click.option("--description-cy", default=None, help="The same in Welsh."),
    ]):
        command = option(command)
    return command


@topics.command("add", examples=["mailer topics add news --default --label News --label-cy Newyddion",
                                 'mailer topics add events --description "What\'s on near you"'])
@click.argument("name", metavar="TOPIC")
@_topic_texts
@click.option("--default", "default", is_flag=True,
              help="Every new subscriber joins it (web form, `subscribers add`, import); ticked on the subscribe page.")
@click.option("--public/--private", "public", default=True, show_default=True,
              help="Offered on the subscribe and preferences pages, or kept for editors (a test list).")
def topics_add(name: str, default: bool, public: bool, **texts: str | None) -> None:
    """Add a topic, with its flags and what readers see of it in each language."""
    from mailer.store.topics import add_topic

    with session() as db_session:
        add_topic(db_session, name=name, default=default, public=public,
                  **{field: text or "" for field, text in texts.items()})
        db_session.commit()
    output.echo(f"Added topic {name} ({_flags(default, public)}).")


@topics.command("edit", examples=["mailer topics edit news --default --label-cy Newyddion"])
@click.argument("name", metavar="TOPIC")
@_topic_texts
@click.option("--default/--no-default", "default", default=None, help="Whether new subscribers join it.")
@click.option("--public/--private", "public", default=None, help="Whether the pages offer it.")
def topics_edit(name: str, default: bool | None, public: bool | None, **texts: str | None) -> None:
    """Change a topic: its flags, and what readers see of it; options not given stay as they are ("" empties a text).

    Memberships stay as they are: a topic made default acts on new subscribers.
    """
    from mailer.store.topics import edit_topic, set_flags

    with session() as db_session:
        topic = edit_topic(db_session, name=name, **texts)
        set_flags(db_session, name=name, default=default, public=public)
        db_session.commit()
    output.echo(f"Changed topic {name} ({_flags(topic.is_default, topic.public)}).")


@topics.command("list", examples=["mailer topics list"])
def topics_list() -> None:
    """List topics: flags, number of active subscribers, and what readers see in English and Welsh."""
    from mailer.store.topics import TOPIC_TEXTS, list_topics

    table = output.table("topic", "default", "public", "active", "label", "label (cy)", "description", "description (cy)",
                         wrap=("label", "label (cy)", "description", "description (cy)"))
    with session() as db_session:
        for topic, count in list_topics(db_session):
            table.add_row(topic.name, "yes" if topic.is_default else "no", "yes" if topic.public else "no",
                          str(count), *(getattr(topic, field) for field in TOPIC_TEXTS))
    output.show(table)


@topics.command("remove", examples=["mailer topics remove events --yes"])
@click.argument("name", metavar="TOPIC")
@click.confirmation_option(prompt="Remove this topic and everyone's membership of it?")
def topics_remove(name: str) -> None:
    """Remove a topic (subscribers stay, without it)."""
    from mailer.store.topics import remove_topic

    with session() as db_session:
        remove_topic(db_session, name=name)
        db_session.commit()
    output.echo(f"Removed topic {name}.")


# ---- mailer subscribers ------------------------------------------------------------------------


@group(examples=["mailer subscribers import members.csv --dry-run", "mailer subscribers list --status active"])
def subscribers() -> None:
    """Subscribers: add, list, import, export, remove and forget."""


subscribers.add_command(topics)


@subscribers.command(examples=['mailer subscribers add gwenllian@example.org --name "Gwenllïan ap Rhys" --language cy --topic news',
                              "mailer subscribers add nia@example.org --language cy --welcome"])
@click.argument("email", metavar="ADDRESS")
@click.option("--name", default="", help="Their name, as they write it.")
@click.option("--topic", "topic_names_", multiple=True, metavar="TOPIC",
              help="A topic to subscribe to, besides the default topics (repeat, or separate with commas).")
@click.option("--language", type=LANGUAGES, default=None, help="en, cy or both (default: the settings' default_language).")
@click.option("--welcome", is_flag=True, help="Send them the welcome email (welcome_issue), as after a confirmation.")
@insecure_links_option
def add(email: str, name: str, topic_names_: tuple[str, ...], language: str | None, welcome: bool,
        allow_insecure_links: bool) -> None:
    """Add an active subscriber whose consent you already have; they join the default topics too."""
    from mailer.publiclinks import require_usable_links
    from mailer.store.csvio import split_topics
    from mailer.store.models import stored_id
    from mailer.store.subscribers import add_subscriber
    from mailer.store.topics import topic_names

    wanted = [topic for option in topic_names_ for topic in split_topics(option)]
    if welcome:
        require_usable_links(settings(), allow_insecure_links=allow_insecure_links)  # the welcome is a send
    welcome_send = _welcome_send() if welcome else None
    with session() as db_session:
        subscriber = add_subscriber(
            db_session, email=email, name=name, language=language or settings().default_language,
            topics=wanted, source="cli", consent_text="added by an editor", salts=_secret_keys(),
        )
        welcomed = False
        if welcome_send is not None:
            from mailer.delivery.welcome import add_reader

            welcomed = add_reader(db_session, send_id=welcome_send, subscriber_id=stored_id(subscriber))  # commits both
        joined = topic_names(db_session, stored_id(subscriber))
        db_session.commit()
    output.echo(f"Added {subscriber.email} ({subscriber.language}; topics: {', '.join(joined) or 'none'}).")
    if welcome_send is not None and welcomed:
        from mailer.delivery.welcome import deliver_queued

        engine = open_store()
        try:
            report = deliver_queued(settings(), engine, welcome_send)
        finally:
            engine.dispose()
        output.echo(f"Welcome email: {report}" if report else
                    f"Welcome email queued (send {welcome_send}); the runner delivers it.")


def _welcome_send() -> int:
    """The welcome send a new subscriber is added to (made before their own transaction)."""
    from mailer.delivery.welcome import prepare

    if not settings().welcome_issue:
        raise StoreError('--welcome: no welcome email is set (welcome_issue in mailer.toml); nobody was added')
    engine = open_store()
    try:
        send_id = prepare(settings(), engine)
    finally:
        engine.dispose()
    if send_id is None:
        raise StoreError(f"--welcome: the welcome issue {settings().welcome_issue} cannot be used "
                         "(see `mailer welcome show`); nobody was added")
    return send_id


@subscribers.command(examples=["mailer subscribers show gwenllian@example.org"])
@click.argument("email", metavar="ADDRESS")
def show(email: str) -> None:
    """Show one subscriber and their history."""
    from sqlmodel import col, select

    from mailer.bounces.report import removed_by
    from mailer.store.models import Event, stored_id
    from mailer.store.subscribers import require_by_email
    from mailer.store.topics import topic_names

    with session() as db_session:
        subscriber = require_by_email(db_session, email=email)
        details = output.fields([
            ("email", subscriber.email), ("name", subscriber.name or "-"), ("language", subscriber.language),
            ("status", subscriber.status), ("topics", ", ".join(topic_names(db_session, stored_id(subscriber))) or "-"),
            ("source", subscriber.source or "-"), ("consent", subscriber.consent_text or "-"),
            ("created", _date(subscriber.created_at)), ("confirmed", _date(subscriber.confirmed_at)),
            ("status changed", _date(subscriber.status_changed_at)),
            ("removed by", removed_by(db_session, stored_id(subscriber)) or "-"),
        ])
        history = output.table("when (UTC)", "event", "channel", "send", "detail", title="History", wrap=("detail",))
        events = select(Event).where(Event.subscriber_id == subscriber.id).order_by(col(Event.created_at), col(Event.id))
        for event in db_session.exec(events):
            history.add_row(_date(event.created_at), event.kind, event.channel, str(event.send_id or ""), event.detail)
    output.show(details)
    output.show(history)


@subscribers.command("list", examples=["mailer subscribers list", "mailer subscribers list --status active --topic news"])
@click.option("--status", type=STATUSES, default=None, help="Only subscribers with this status.")
@click.option("--topic", default=None, metavar="TOPIC", help="Only subscribers in this topic.")
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True, metavar="N",
              help="At most this many rows (0: all; `export` suits big lists).")
def list_(status: str | None, topic: str | None, limit: int) -> None:
    """List subscribers as a table."""
    from sqlmodel import col, func, select

    from mailer.store.models import Subscriber, SubscriberTopic, stored_id
    from mailer.store.subscribers import REMEMBERED
    from mailer.store.topics import resolve_topics, topics_by_subscriber

    query = select(Subscriber).where(REMEMBERED).order_by(col(Subscriber.email_key))
    if status:
        query = query.where(Subscriber.status == status)
    with session() as db_session:
        if topic:
            (found,) = resolve_topics(db_session, [topic])
            members = select(SubscriberTopic.subscriber_id).where(SubscriberTopic.topic_id == found.id)
            query = query.where(col(Subscriber.id).in_(members))
        total = db_session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
        table = output.table("email", "name", "lang", "status", "topics", "since", wrap=("name", "topics"))
        for part in db_session.exec(query.limit(limit or None).execution_options(yield_per=1000)).partitions():
            topics = topics_by_subscriber(db_session, [stored_id(subscriber) for subscriber in part])
            for subscriber in part:
                table.add_row(subscriber.email, subscriber.name, subscriber.language, subscriber.status,
                              ", ".join(topics.get(stored_id(subscriber), [])), f"{subscriber.status_changed_at:%Y-%m-%d}")
    output.show(table)
    shown = min(total, limit) if limit else total
    more = f" (showing {shown}; use --limit 0 for all)" if shown < total else ""
    output.echo(f"{output.plural(total, 'subscriber')}{more}")


@subscribers.command(examples=["mailer subscribers remove gwenllian@example.org"])
@click.argument("email", metavar="ADDRESS")
def remove(email: str) -> None:
    """Unsubscribe someone (their history is kept; `forget` erases them)."""
    from mailer.store.models import SubscriberStatus, stored_id
    from mailer.store.subscribers import require_by_email, unsubscribe

    with session() as db_session:
        subscriber = require_by_email(db_session, email=email)
        was = subscriber.status
        unsubscribe(db_session, subscriber_id=stored_id(subscriber), channel="cli")
        db_session.commit()
    output.echo(f"{subscriber.email} was already unsubscribed." if was == SubscriberStatus.unsubscribed
                else f"Unsubscribed {subscriber.email} (was {was}).")


@subscribers.command("import", examples=["mailer subscribers import members.csv --dry-run",
                                         'mailer subscribers import members.csv --consent "signed up at the 2026 AGM"'])
@click.argument("file", metavar="CSV_FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@click.option("--resubscribe", is_flag=True,
              help="Re-activate people who unsubscribed, bounced or complained (not on rows whose status says so).")
@click.option("--create-topics", is_flag=True, help="Create the topics the file names that do not exist yet.")
@click.option("--suppress", is_flag=True, help="CSV_FILE is a bare list of addresses that must never be mailed.")
@click.option("--language", type=LANGUAGES, default=None, help="For rows without one (default: the settings' default_language).")
@click.option("--consent", default=None, help="The consent these people gave, kept with each (default: 'imported from FILE').")
@click.option("-q", "--quiet", is_flag=True, help="Report only rejected lines and the totals.")
def import_(file: Path, dry_run: bool, resubscribe: bool, create_topics: bool, suppress: bool, language: str | None,
            consent: str | None, quiet: bool) -> None:
    """Import subscribers from a CSV file, all or nothing.

    Columns: email, name, language, topics, status, source, consent (an export's
    dates too); Mailchimp and listmonk exports are read as well. A status of
    unsubscribed, bounced or complained is kept: such people are never mailed.
    """
    _import(file, dry_run=dry_run, resubscribe=resubscribe, create_topics=create_topics, suppress=suppress,
            language=language, consent=consent, quiet=quiet)


@subscribers.command(examples=["mailer subscribers suppress do-not-mail.txt --dry-run"])
@click.argument("file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Report only rejected lines and the totals.")
def suppress(file: Path, dry_run: bool, quiet: bool) -> None:
    """Never mail the addresses in FILE (one a line): the same as `import --suppress`.

    New addresses are kept as unsubscribed, so no later import adds them; subscribers are unsubscribed.
    """
    _import(file, dry_run=dry_run, resubscribe=False, create_topics=False, suppress=True, language=None,
            consent=None, quiet=quiet)


def _import(file: Path, *, dry_run: bool, resubscribe: bool, create_topics: bool, suppress: bool,
            language: str | None, consent: str | None, quiet: bool) -> None:
    from mailer.store.csvio import Outcome, import_csv

    def report(result: LineResult) -> None:
        if quiet and result.outcome != Outcome.rejected:
            return
        reason = f": {result.reason}" if result.reason else ""
        outcome = output.styled(result.outcome, OUTCOME_COLOURS.get(result.outcome, ""))
        output.echo(f"{file}:{result.line}:", outcome, f"{result.email}{reason}")

    with session() as db_session:
        summary = import_csv(
            db_session, path=file, default_language=language or settings().default_language,
            resubscribe=resubscribe, create_topics=create_topics, suppress=suppress,
            consent_text=consent or f"imported from {file.name}", salts=_secret_keys(), on_line=report,
        )
        if dry_run:
            db_session.rollback()
        else:
            db_session.commit()
    _notes(file, summary)
    output.echo(f"{'Dry run, nothing written: ' if dry_run else ''}{summary}.")


def _notes(file: Path, summary: ImportReport) -> None:
    """What was decided for the file as a whole: whose export it is, columns read past, topics created."""
    if summary.kind != "mailer":
        output.echo(f"{file}: read as a {summary.kind}.")
    if summary.read_past:
        output.echo(f"{file}: columns read past: {', '.join(summary.read_past)}.")
    if summary.created_topics:
        output.echo(f"Created topic{'s' * (len(summary.created_topics) > 1)} {', '.join(summary.created_topics)}.")


@subscribers.command(examples=["mailer subscribers export members-2026-12.csv", "mailer subscribers export > members.csv"])
@click.argument("file", metavar="CSV_FILE", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=False)
def export(file: Path | None) -> None:
    """Export every subscriber as CSV (to CSV_FILE, with a BOM so spreadsheets read Welsh letters; else to stdout)."""
    from mailer.store.csvio import export_csv

    with session() as db_session:
        if file is None:
            export_csv(db_session, sys.stdout)
            return
        try:
            out = file.open("w", encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise StoreError(f"{file}: cannot write: {exc.strerror}") from None
        with out:
            count = export_csv(db_session, out)
    output.echo(f"Exported {output.plural(count, 'subscriber')} to {file}.", err=True)


@subscribers.command("forget", examples=["mailer subscribers forget gwenllian@example.org"])
@click.argument("email", metavar="ADDRESS")
@click.confirmation_option(prompt="Erase this person's data for good (only a hash of the address is kept)?")
def forget_(email: str) -> None:
    """Erase someone's personal data (right to erasure); their address is never imported again."""
    from mailer.store.subscribers import forget

    with session() as db_session:
        subscriber = forget(db_session, email=email, salt=settings().secret_key)
        db_session.commit()
    if subscriber is None:
        output.echo(f"{email} was not a subscriber; it is now on the forgotten list, so no import will add it.")
    else:
        output.echo(f"Forgotten: subscriber {subscriber.id} is now {subscriber.email}; history keeps only non-personal facts.")


@subscribers.command(examples=["mailer subscribers stats", "mailer subscribers stats --months 24"])
@click.option("--months", type=click.IntRange(min=1), default=12, show_default=True, metavar="N",
              help="How many months of growth to show.")
def stats(months: int) -> None:
    """Counts by status, topic and language, and growth month by month."""
    from mailer.store.stats import list_stats

    with session() as db_session:
        numbers = list_stats(db_session, months=months)
    for title, counts in [("status", numbers.by_status), ("topic (active)", numbers.by_topic),
                          ("language (active)", numbers.by_language)]:
        table = output.table(title, "subscribers", wrap=(title,))
        for key, count in counts.items():
            table.add_row(str(key), str(count))
        output.show(table)
    growth = output.table("month", "joined", "left", "net", "bounces", "complaints", title="Growth (UTC months)")
    for month in numbers.growth:
        growth.add_row(month.month, str(month.joined), str(month.left), f"{month.net:+d}", str(month.bounces),
                       str(month.complaints))
    output.show(growth)
    output.echo("As a chart: mailer stats")
