"""Runner tick benchmark: what one pass of `mailer run` costs on a database with a big history.

    python bench/bench_schedule.py                      # 100,000 deliveries, 50 scheduled sends
    python bench/bench_schedule.py --deliveries 1000000 --scheduled 200

The runner ticks every 15 seconds for its whole life, so a tick must stay cheap however
many sends and deliveries the database holds. The database (a fresh SQLite file) holds:
`--scheduled` sends scheduled in the future, one finished send with `--deliveries` rows,
and one send still `sending` whose remaining rows are deferred retries not yet due
(the case the runner looks at on every tick). Nothing is due, so a tick only decides.
In the same process, the floor: one indexed `SELECT` of the scheduled sends' ids.
Prints the median of 50 ticks, the floor, and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import median_seconds  # noqa: E402


def prepare(folder: Path, deliveries: int, scheduled: int):  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from mailer.config import Settings
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus, utcnow

    settings = Settings(secret_key="bench-secret-key-0123456789", database_url=f"sqlite:///{folder / 'bench.db'}",
                        outbox_dir=str(folder / "outbox"))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    now = utcnow()
    with new_session(engine) as session:
        for number in range(scheduled):
            session.add(Send(issue_slug=f"issue-{number}", title=f"Issue {number}", status=SendStatus.scheduled,
                             content=b"{}", scheduled_at=now + timedelta(days=1 + number)))
        done = Send(issue_slug="done", title="Done", status=SendStatus.finished, content=b"{}")
        going = Send(issue_slug="going", title="Going", status=SendStatus.sending, content=b"{}")
        session.add_all([done, going])
        session.commit()
        half = deliveries // 2
        rows = [{"send_id": done.id, "email": f"p{n}@example.org", "status": DeliveryStatus.sent} for n in range(half)]
        rows += [{"send_id": going.id, "email": f"p{n}@example.org",
                  "status": DeliveryStatus.deferred if n % 100 == 0 else DeliveryStatus.sent,
                  "next_attempt_at": now + timedelta(hours=1) if n % 100 == 0 else None} for n in range(deliveries - half)]
        session.execute(insert(Delivery), rows)
        session.commit()
    return settings, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--scheduled", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=50)
    options = parser.parse_args()

    from sqlalchemy import select

    from mailer.schedule.runner import Runner
    from mailer.store.db import new_session
    from mailer.store.models import Send, SendStatus

    with tempfile.TemporaryDirectory() as folder:
        settings, engine = prepare(Path(folder), options.deliveries, options.scheduled)
        runner = Runner(settings, engine=engine)

        def floor() -> None:
            with new_session(engine) as session:
                session.scalars(select(Send.id).where(Send.status == SendStatus.scheduled)).all()

        floor(), runner.tick()  # warm the connection pool and the statement caches
        tick = median_seconds(runner.tick, options.repeat)
        base = median_seconds(floor, options.repeat)
        runner.close()
        engine.dispose()
    print(f"database: {options.deliveries:,} deliveries, {options.scheduled} scheduled sends, 1 send with retries pending")
    print(f"tick (median of {options.repeat}):        {tick * 1000:8.2f} ms")
    print(f"floor, one indexed SELECT:       {base * 1000:8.2f} ms")
    print(f"ratio tick / floor:              {tick / base:8.1f}x")
    print(f"share of a 15 s tick interval:   {tick / 15 * 100:8.3f} %")


if __name__ == "__main__":
    main()
