"""`mailer demo`: the whole flow on embedded defaults, in a folder of its own.

Settings file, SQLite database and outbox live in `--dir` (default `demo/`), so
the demo never touches a real list. Steps: write settings, create the database,
build the sample issue, import sample subscribers, send the issue to the outbox,
print a working preferences link, then run the scheduler and the pages with the
second sample issue due a minute later, until Ctrl-C. Run again, it reuses what
the first run made and says so: nobody gets an issue twice.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from mailer.cli.common import command
from mailer.cli.output import echo, size, styled

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from mailer.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ISSUE = ROOT / "issues" / "2026-11-open-letter.yaml"
SCHEDULED_ISSUE = ROOT / "issues" / "2026-12-network-launch.yaml"
SAMPLE_SUBSCRIBERS = ROOT / "examples" / "subscribers.csv"
# name: (description, default): everyone gets the news; events is a choice.
SAMPLE_TOPICS = {"news": ("Monthly news of the network", True), "events": ("Events near you", False)}


@command(examples=["mailer demo", "mailer demo --dir /tmp/demo --no-serve"])
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, metavar="FOLDER", help="Folder for the demo's settings, database and outbox.")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Afterwards, run the scheduler and the pages until Ctrl-C.")
def demo(folder: Path, serve: bool) -> None:
    """Build, import, send to a local outbox, and serve: the whole flow, safely."""
    from mailer.config import config_path, load_settings, write_sample
    from mailer.content import load_issue
    from mailer.content.build import build_issue, default_language
    from mailer.delivery.engine import deliver
    from mailer.delivery.once import describe, earlier_send
    from mailer.delivery.sends import create_send
    from mailer.schedule import Runner
    from mailer.store.csvio import import_csv
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import SendStatus, stored_id
    from mailer.store.subscribers import get_by_email
    from mailer.store.topics import add_topic, list_topics
    from mailer.tokens import preferences_url

    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    if not config_path().exists():
        write_sample(config_path())
    settings = load_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    _step(1, "Build the sample issue")
    issue = load_issue(SAMPLE_ISSUE)
    built = build_issue(issue, settings, Path("build"), default_language(issue))
    for path in built.files:
        echo(f"  {path.resolve()}  ({size(path.stat().st_size)})")

    _step(2, "Import sample subscribers")
    with new_session(engine) as session:
        known = {topic.name for topic, _count in list_topics(session)}
        for name, (description, default) in SAMPLE_TOPICS.items():
            if name not in known:
                add_topic(session, name=name, description=description, default=default)
        report = import_csv(session, path=SAMPLE_SUBSCRIBERS, consent_text="Sample data for the demo")
        session.commit()
    echo(f"  {report}")

    _step(3, "Send the sample issue to the outbox")
    with new_session(engine) as session:
        earlier = earlier_send(session, SAMPLE_ISSUE.stem)
        if earlier is None:
            send_id = stored_id(create_send(session, settings=settings, issue_path=SAMPLE_ISSUE))
        else:
            echo(f"  reused: {describe(session, settings, earlier)}")
            send_id = stored_id(earlier)
    if earlier is None or earlier.status != SendStatus.finished:  # a first run cut short goes on where it stopped
        echo(f"  {deliver(settings, send_id)}")
    else:
        echo("  nothing mailed again")
    echo(f"  messages: {Path(settings.outbox_dir).resolve()}")

    _step(4, "A subscriber's preferences page")
    with new_session(engine) as session:
        reader = get_by_email(session, email="gwenllian@example.org")
    assert reader is not None  # imported above
    echo(f"  {preferences_url(settings, stored_id(reader))}")

    if not serve:
        return
    _step(5, "Schedule the bilingual sample a minute ahead, and run")
    _schedule_sample(engine, settings)
    echo(f"  pages: {settings.base_url}/archive  (Ctrl-C stops)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runner = Runner(settings, engine=engine)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop.set())
    runner.run(web=True)


def _schedule_sample(engine: Engine, settings: Settings) -> None:
    """Schedule the second sample, or reuse its send from an earlier run: moved if still to come, else left."""
    from mailer.delivery.once import describe, earlier_send
    from mailer.schedule import schedule_send
    from mailer.schedule.service import move_send
    from mailer.store.db import new_session
    from mailer.store.models import SendStatus, stored_id

    when = _next_minute(settings.timezone)
    with new_session(engine) as session:
        earlier = earlier_send(session, SCHEDULED_ISSUE.stem)
        if earlier is None:
            scheduled, moment = schedule_send(session, settings=settings, issue_path=SCHEDULED_ISSUE, when=when)
            echo(f"  send {scheduled.id} at {moment}")
            return
        echo(f"  reused: {describe(session, settings, earlier)}")
        if earlier.status in (SendStatus.scheduled, SendStatus.missed):
            echo(f"  moved to {move_send(session, settings=settings, send_id=stored_id(earlier), when=when)}")
        else:
            echo("  nothing mailed again")


def _step(number: int, title: str) -> None:
    echo()
    echo(styled(f"{number}. {title}", "bold"))


def _next_minute(tz_name: str) -> datetime:
    """The start of the minute after next, in `tz_name`: a minute or more from now."""
    now = datetime.now(UTC).astimezone(ZoneInfo(tz_name))
    return (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
