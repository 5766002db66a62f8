"""`mailer db`, `mailer subscribers` and `mailer topics`: the list, from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy import func, select

from mailer.bounces.report import removed_by
from mailer.cli.common import console, open_store, session, settings
from mailer.cli.send import insecure_links_option
from mailer.errors import DatabaseOutOfDate, StoreError
from mailer.publiclinks import require_usable_links
from mailer.store import db as store_db
from mailer.store.csvio import ImportReport, LineResult, Outcome, export_csv, import_csv, split_topics
from mailer.store.models import Event, Language, Subscriber, SubscriberStatus, SubscriberTopic
from mailer.store.stats import list_stats
from mailer.store.subscribers import REMEMBERED, add_subscriber, forget, require_by_email, unsubscribe
from mailer.store.topics import (
    TOPIC_TEXTS,
    add_topic,
    edit_topic,
    list_topics,
    remove_topic,
    resolve_topics,
    set_flags,
    topic_names,
    topics_by_subscriber,
)

LANGUAGES = click.Choice([language.value for language in Language], case_sensitive=False)
STATUSES = click.Choice([status.value for status in SubscriberStatus], case_sensitive=False)
OUTCOME_COLOURS = {Outcome.added: "green", Outcome.updated: "cyan", Outcome.unchanged: None, Outcome.rejected: "red"}


def _secret_keys() -> list[str]:
    """Every key an erased address may have been hashed with (the current one first)."""
    return [settings().secret_key, *settings().old_secret_keys]


def _date(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


# ---- mailer db ---------------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The database: create it and keep its schema up to date."""


@db.command()
def upgrade() -> None:
    """Create the database if missing and apply every migration it has not had."""
    engine = store_db.make_engine(settings().database_url)
    before = store_db.current_revision(engine)
    store_db.upgrade(engine)
    after = store_db.current_revision(engine)
    engine.dispose()
    if before == after:
        click.echo(f"Database already up to date (revision {after}).")
    else:
        click.echo(f"Database upgraded from {before or 'empty'} to revision {after}.")


@db.command()
def current() -> None:
    """Show the database's schema revision and the one this mailer expects."""
    engine = store_db.make_engine(settings().database_url)
    revision = store_db.current_revision(engine)
    try:
        store_db.require_current(engine)
        state = "up to date"
    except DatabaseOutOfDate as exc:
        state = str(exc)
    finally:
        engine.dispose()
    click.echo(f"Database revision: {revision or 'none (empty database)'}; expected: {store_db.head_revision()} ({state}).")


@db.command()
def check() -> None:
    """Compare the database with the models; fails if they differ (a missing migration)."""
    engine = open_store()
    differences = store_db.drift(engine)
    engine.dispose()
    if differences:
        lines = "\n".join(f"  {difference}" for difference in differences)
        raise StoreError(f"the database differs from the models (a migration is missing):\n{lines}")
    click.echo("Database matches the models.")


# ---- mailer topics -----------------------------------------------------------------------------


@click.group()
def topics() -> None:
    """Topics: the named lists (news, events...) subscribers choose from."""


def _flags(default: bool, public: bool) -> str:
    return ", ".join(["default"] * default + ["public" if public else "private"])


def _topic_texts(command: Callable[..., None]) -> Callable[..., None]:
    """What readers see of a topic, in English (or for every language) and in Welsh."""
    for option in reversed([
        click.option("--label", default=None, help="The topic's name as readers see it (default: NAME)."),
        click.option("--label-cy", default=None, help="The same in Welsh, for the Welsh pages."),
        click.option("--description", default=None, help="A sentence on what the topic brings, shown under its name."),
        click.option("--description-cy", default=None, help="The same in Welsh."),
    ]):
        command = option(command)
    return command


@topics.command("add")
@click.argument("name")
@_topic_texts
@click.option("--default", "default", is_flag=True,
              help="Every new subscriber joins it (web form, `subscribers add`, import); ticked on the subscribe page.")
@click.option("--public/--private", "public", default=True, show_default=True,
              help="Offered on the subscribe and preferences pages, or kept for editors (a test list).")
def topics_add(name: str, default: bool, public: bool, **texts: str | None) -> None:
    """Add a topic, with its flags and what readers see of it in each language.

    Example: mailer topics add news --default --label News --label-cy Newyddion
    """
    with session() as db_session:
        add_topic(db_session, name=name, default=default, public=public,
                  **{field: text or "" for field, text in texts.items()})
        db_session.commit()
    click.echo(f"Added topic {name} ({_flags(default, public)}).")


@topics.command("edit")
@click.argument("name")
@_topic_texts
@click.option("--default/--no-default", "default", default=None, help="Whether new subscribers join it.")
@click.option("--public/--private", "public", default=None, help="Whether the pages offer it.")
def topics_edit(name: str, default: bool | None, public: bool | None, **texts: str | None) -> None:
    """Change a topic: its flags, and what readers see of it; options not given stay as they are ("" empties a text).

    Memberships stay as they are: a topic made default acts on new subscribers.

    Example: mailer topics edit news --default --label-cy Newyddion
    """
    with session() as db_session:
        topic = edit_topic(db_session, name=name, **texts)
        set_flags(db_session, name=name, default=default, public=public)
        db_session.commit()
    click.echo(f"Changed topic {name} ({_flags(topic.is_default, topic.public)}).")


@topics.command("list")
def topics_list() -> None:
    """List topics: flags, number of active subscribers, and what readers see in English and Welsh."""
    table = Table("topic", "default", "public", "active", "label", "label (cy)", "description", "description (cy)")
    with session() as db_session:
        for topic, count in list_topics(db_session):
            table.add_row(topic.name, "yes" if topic.is_default else "no", "yes" if topic.public else "no",
                          str(count), *(Text(getattr(topic, field)) for field in TOPIC_TEXTS))
    console.print(table)


@topics.command("remove")
@click.argument("name")
@click.confirmation_option(prompt="Remove this topic and everyone's membership of it?")
def topics_remove(name: str) -> None:
    """Remove a topic (subscribers stay, without it)."""
    with session() as db_session:
        remove_topic(db_session, name=name)
        db_session.commit()
    click.echo(f"Removed topic {name}.")


# ---- mailer subscribers ------------------------------------------------------------------------


@click.group()
def subscribers() -> None:
    """Subscribers: add, list, import, export, remove and forget."""


subscribers.add_command(topics)


@subscribers.command()
@click.argument("email")
@click.option("--name", default="", help="Their name, as they write it.")
@click.option("--topic", "topic_names_", multiple=True,
              help="A topic to subscribe to, besides the default topics (repeat, or separate with commas).")
@click.option("--language", type=LANGUAGES, default=None, help="en, cy or both (default: the settings' default_language).")
@click.option("--welcome", is_flag=True, help="Send them the welcome email (welcome_issue), as after a confirmation.")
@insecure_links_option
def add(email: str, name: str, topic_names_: tuple[str, ...], language: str | None, welcome: bool,
        allow_insecure_links: bool) -> None:
    """Add an active subscriber whose consent you already have; they join the default topics too.

    Example: mailer subscribers add gwen@example.org --name "Gwenllïan ap Rhys" --language cy --welcome
    """
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

            welcomed = add_reader(db_session, send_id=welcome_send, subscriber_id=subscriber.id)  # commits both
        joined = topic_names(db_session, subscriber.id)
        db_session.commit()
    click.echo(f"Added {subscriber.email} ({subscriber.language}; topics: {', '.join(joined) or 'none'}).")
    if welcomed:
        from mailer.delivery.welcome import deliver_queued

        engine = open_store()
        try:
            report = deliver_queued(settings(), engine, welcome_send)
        finally:
            engine.dispose()
        click.echo(f"Welcome email: {report}" if report else
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


@subscribers.command()
@click.argument("email")
def show(email: str) -> None:
    """Show one subscriber and their history."""
    with session() as db_session:
        subscriber = require_by_email(db_session, email=email)
        fields = Table.grid(padding=(0, 2))
        for label, value in [
            ("email", subscriber.email), ("name", subscriber.name or "-"), ("language", subscriber.language),
            ("status", subscriber.status), ("topics", ", ".join(topic_names(db_session, subscriber.id)) or "-"),
            ("source", subscriber.source or "-"), ("consent", subscriber.consent_text or "-"),
            ("created", _date(subscriber.created_at)), ("confirmed", _date(subscriber.confirmed_at)),
            ("status changed", _date(subscriber.status_changed_at)),
            ("removed by", Text(removed_by(db_session, subscriber.id) or "-")),  # outside text: never markup
        ]:
            fields.add_row(label, value)
        history = Table("when (UTC)", "event", "channel", "send", "detail", title="History")
        events = select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.created_at, Event.id)
        for event in db_session.scalars(events):
            history.add_row(_date(event.created_at), event.kind, event.channel, str(event.send_id or ""), event.detail)
    console.print(fields)
    console.print(history)


@subscribers.command("list")
@click.option("--status", type=STATUSES, default=None, help="Only subscribers with this status.")
@click.option("--topic", default=None, help="Only subscribers in this topic.")
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="At most this many rows (0: all; `export` suits big lists).")
def list_(status: str | None, topic: str | None, limit: int) -> None:
    """List subscribers as a table."""
    query = select(Subscriber).where(REMEMBERED).order_by(Subscriber.email_key)
    if status:
        query = query.where(Subscriber.status == status)
    with session() as db_session:
        if topic:
            (found,) = resolve_topics(db_session, [topic])
            query = query.where(Subscriber.id.in_(select(SubscriberTopic.subscriber_id).where(SubscriberTopic.topic_id == found.id)))
        total = db_session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        table = Table(
            Column("email", overflow="fold"), Column("name", overflow="fold"), Column("lang", no_wrap=True),
            Column("status", no_wrap=True), Column("topics", overflow="fold"), Column("since", no_wrap=True),
        )
        for part in db_session.scalars(query.limit(limit or None).execution_options(yield_per=1000)).partitions():
            topics = topics_by_subscriber(db_session, [subscriber.id for subscriber in part])
            for subscriber in part:
                table.add_row(subscriber.email, subscriber.name, subscriber.language, subscriber.status,
                              ", ".join(topics.get(subscriber.id, [])), f"{subscriber.status_changed_at:%Y-%m-%d}")
    console.print(table)
    shown = min(total, limit) if limit else total
    more = f" (showing {shown}; use --limit 0 for all)" if shown < total else ""
    console.print(f"{total} subscriber{'s' * (total != 1)}{more}")


@subscribers.command()
@click.argument("email")
def remove(email: str) -> None:
    """Unsubscribe someone (their history is kept; `forget` erases them)."""
    with session() as db_session:
        subscriber = require_by_email(db_session, email=email)
        was = subscriber.status
        unsubscribe(db_session, subscriber_id=subscriber.id, channel="cli")
        db_session.commit()
    click.echo(f"{subscriber.email} was already unsubscribed." if was == SubscriberStatus.unsubscribed
               else f"Unsubscribed {subscriber.email} (was {was}).")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@click.option("--resubscribe", is_flag=True,
              help="Re-activate people who unsubscribed, bounced or complained (not on rows whose status says so).")
@click.option("--create-topics", is_flag=True, help="Create the topics the file names that do not exist yet.")
@click.option("--suppress", is_flag=True, help="FILE is a bare list of addresses that must never be mailed.")
@click.option("--language", type=LANGUAGES, default=None, help="For rows without one (default: the settings' default_language).")
@click.option("--consent", default=None, help="The consent these people gave, kept with each (default: 'imported from FILE').")
@click.option("-q", "--quiet", is_flag=True, help="Report only rejected lines and the totals.")
def import_(file: Path, dry_run: bool, resubscribe: bool, create_topics: bool, suppress: bool, language: str | None,
            consent: str | None, quiet: bool) -> None:
    """Import subscribers from a CSV file, all or nothing.

    Columns: email, name, language, topics, status, source, consent (an export's
    dates too); Mailchimp and listmonk exports are read as well. A status of
    unsubscribed, bounced or complained is kept: such people are never mailed.

    Example: mailer subscribers import members.csv --dry-run
    """
    _import(file, dry_run=dry_run, resubscribe=resubscribe, create_topics=create_topics, suppress=suppress,
            language=language, consent=consent, quiet=quiet)


@subscribers.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Report only rejected lines and the totals.")
def suppress(file: Path, dry_run: bool, quiet: bool) -> None:
    """Never mail the addresses in FILE (one a line): the same as `import --suppress`.

    New addresses are kept as unsubscribed, so no later import adds them; subscribers are unsubscribed.

    Example: mailer subscribers suppress do-not-mail.txt
    """
    _import(file, dry_run=dry_run, resubscribe=False, create_topics=False, suppress=True, language=None,
            consent=None, quiet=quiet)


def _import(file: Path, *, dry_run: bool, resubscribe: bool, create_topics: bool, suppress: bool,
            language: str | None, consent: str | None, quiet: bool) -> None:
    def report(result: LineResult) -> None:
        if quiet and result.outcome != Outcome.rejected:
            return
        reason = f": {result.reason}" if result.reason else ""
        outcome = click.style(result.outcome, fg=OUTCOME_COLOURS[result.outcome])
        click.echo(f"{file}:{result.line}: {outcome} {result.email}{reason}")

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
    click.echo(f"{'Dry run, nothing written: ' if dry_run else ''}{summary}.")


def _notes(file: Path, summary: ImportReport) -> None:
    """What was decided for the file as a whole: whose export it is, columns read past, topics created."""
    if summary.kind != "mailer":
        click.echo(f"{file}: read as a {summary.kind}.")
    if summary.read_past:
        click.echo(f"{file}: columns read past: {', '.join(summary.read_past)}.")
    if summary.created_topics:
        click.echo(f"Created topic{'s' * (len(summary.created_topics) > 1)} {', '.join(summary.created_topics)}.")


@subscribers.command()
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=False)
def export(file: Path | None) -> None:
    """Export every subscriber as CSV (to FILE, with a BOM so spreadsheets read Welsh letters; else to stdout)."""
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
    click.echo(f"Exported {count} subscribers to {file}.", err=True)


@subscribers.command("forget")
@click.argument("email")
@click.confirmation_option(prompt="Erase this person's data for good (only a hash of the address is kept)?")
def forget_(email: str) -> None:
    """Erase someone's personal data (right to erasure); their address is never imported again."""
    with session() as db_session:
        subscriber = forget(db_session, email=email, salt=settings().secret_key)
        db_session.commit()
    if subscriber is None:
        click.echo(f"{email} was not a subscriber; it is now on the forgotten list, so no import will add it.")
    else:
        click.echo(f"Forgotten: subscriber {subscriber.id} is now {subscriber.email}; history keeps only non-personal facts.")


@subscribers.command()
@click.option("--months", type=click.IntRange(min=1), default=12, show_default=True,
              help="How many months of growth to show.")
def stats(months: int) -> None:
    """Counts by status, topic and language, and growth month by month."""
    with session() as db_session:
        numbers = list_stats(db_session, months=months)
    for title, counts in [("status", numbers.by_status), ("topic (active)", numbers.by_topic),
                          ("language (active)", numbers.by_language)]:
        table = Table(title, "subscribers")
        for key, count in counts.items():
            table.add_row(str(key), str(count))
        console.print(table)
    growth = Table("month", "joined", "left", "net", "bounces", "complaints", title="Growth (UTC months)")
    for month in numbers.growth:
        growth.add_row(month.month, str(month.joined), str(month.left), f"{month.net:+d}", str(month.bounces),
                       str(month.complaints))
    console.print(growth)
    console.print("As a chart: mailer stats")
