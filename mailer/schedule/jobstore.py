"""APScheduler on the mailer database: the one place its job store and defaults are set up.

Jobs that must survive a restart (send triggers, recurring rules) live in the SQLAlchemy
job store, in table `apscheduler_jobs` of the same database; they name their function as
`module:function` with plain arguments, because that is what the store can keep.
The runner's own periodic jobs live in memory and are recreated at every start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from mailer.config import Settings
from mailer.schedule.times import zone

PERSISTENT = "default"
INTERNAL = "internal"
MIN_GRACE = timedelta(minutes=1)


def grace(settings: Settings) -> timedelta:
    """How late a send or rule may still start. At least a minute: starting takes a moment,
    and a zero grace would mark every send missed."""
    return max(timedelta(hours=settings.schedule_grace_hours), MIN_GRACE)


def make_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={PERSISTENT: SQLAlchemyJobStore(engine=engine), INTERNAL: MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(grace(settings).total_seconds())},
        timezone=zone(settings.timezone),
    )


@contextmanager
def paused_scheduler(settings: Settings, engine: Engine) -> Iterator[BackgroundScheduler]:
    """The job store open for reading and writing jobs without running any: for commands."""
    scheduler = make_scheduler(settings, engine)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
