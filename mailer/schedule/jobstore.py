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
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
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


def _options(settings: Settings, engine: Engine) -> dict[str, Any]:
    return {
        "jobstores": {PERSISTENT: SQLAlchemyJobStore(engine=engine), INTERNAL: MemoryJobStore()},
        "executors": {"default": ThreadPoolExecutor(4)},
        "job_defaults": {"coalesce": True, "max_instances": 1, "misfire_grace_time": int(grace(settings).total_seconds())},
        "timezone": zone(settings.timezone),
    }


def make_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    """The runner's scheduler: a thread that runs the jobs on time."""
    return BackgroundScheduler(**_options(settings, engine))


class JobStoreEditor(BaseScheduler):  # type: ignore[misc]  # APScheduler 3 publishes no types
    """A scheduler with no thread, which never runs a job: commands read and write jobs with it.

    Not a paused BackgroundScheduler: its thread looks at the due jobs once more on shutdown
    and moves an overdue rule on to next month without running it (nor telling the runner).
    """

    def shutdown(self, wait: bool = True) -> None:
        """Abstract in BaseScheduler; with no thread, its own shutdown is all there is to do."""
        super().shutdown(wait)

    def wakeup(self) -> None:
        """Nothing to wake: only the runner runs jobs."""


@contextmanager
def paused_scheduler(settings: Settings, engine: Engine) -> Iterator[BaseScheduler]:
    """The job store open for reading and writing jobs without running any: for commands."""
    scheduler = JobStoreEditor(**_options(settings, engine))
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
