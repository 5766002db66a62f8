"""Store benchmark: import a 100,000-row CSV, export it again; rows per second and peak memory.

Targets (issue 3): import over 5,000 rows/s on SQLite; export memory flat in the
number of rows. Baselines, measured in the same process: importing row by row
through `add_subscriber` (the obvious way), exporting by loading every row
first, and checking every address with email-validator whole (what
`normalise_email` does only for addresses off its per-domain short path). Peak memory is Python's (tracemalloc), measured in separate runs so that
tracing does not slow the timed ones.

    .venv/bin/python bench/bench_store.py [--rows 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from email_validator import validate_email
from sqlalchemy import delete, select
from sqlmodel import SQLModel

from mailer.store.csvio import EXPORT_COLUMNS, export_csv, import_csv
from mailer.store.db import make_engine, new_session, upgrade
from mailer.store.models import Subscriber, Topic
from mailer.store.subscribers import add_subscriber, normalise_email

NAMES = ["Gwenllïan ap Rhys", "Dafydd ŵŷ", "Siân Owen", "Rhodri Llŷr", "Megan Jones", "Iolo", ""]
TOPICS = ["news", "events", "news events", ""]


def write_csv(path: Path, rows: int, start: int = 0) -> None:
    rng = random.Random(rows)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "name", "language", "topics"])
        for i in range(start, start + rows):
            writer.writerow([f"Person{i}@Example{i % 97}.org", rng.choice(NAMES), rng.choice(["en", "cy", ""]), rng.choice(TOPICS)])


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds: CPU time stays honest when other work shares the machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_mib(work: Callable[[], object]) -> float:
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    engine = make_engine(args.database_url or f"sqlite:///{folder / 'bench.db'}")
    upgrade(engine)

    def empty() -> None:
        with engine.begin() as connection:
            for table in reversed(SQLModel.metadata.sorted_tables):
                connection.execute(delete(table))
        with new_session(engine) as session:
            session.add_all([Topic(name="news"), Topic(name="events")])
            session.commit()

    def import_file(path: Path) -> None:
        with new_session(engine) as session:
            import_csv(session, path=path)
            session.commit()

    def export_file(path: Path) -> None:
        with new_session(engine) as session, path.open("w", encoding="utf-8-sig", newline="") as out:
            export_csv(session, out)

    def export_loading_everything(path: Path) -> None:
        with new_session(engine) as session, path.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(EXPORT_COLUMNS)
            for subscriber in session.scalars(select(Subscriber)).all():
                writer.writerow([subscriber.email, subscriber.name, subscriber.language, "", subscriber.status])

    def one_by_one(rows: int) -> None:
        with new_session(engine) as session:
            for i in range(rows):
                add_subscriber(session, email=f"slow{i}@example.org", name="Siân", topics=["news"], source="import")
            session.commit()

    big, small, out = folder / "big.csv", folder / "small.csv", folder / "out.csv"
    write_csv(big, args.rows)
    write_csv(small, args.rows // 10)
    baseline_rows = max(args.rows // 50, 200)
    print(f"store benchmark: {args.rows:,} rows, {engine.dialect.name}, Python {sys.version.split()[0]}")

    empty()
    baseline = baseline_rows / timed(lambda: one_by_one(baseline_rows))[0]
    empty()
    seconds, cpu = timed(lambda: import_file(big))
    rate = args.rows / seconds
    print(f"import   {rate:10,.0f} rows/s  ({seconds:.2f} s, {args.rows / cpu:,.0f} rows per CPU-second;"
          f" row-by-row add_subscriber baseline {baseline:,.0f} rows/s, x{rate / baseline:.1f})")
    seconds, cpu = timed(lambda: export_file(out))
    print(f"export   {args.rows / seconds:10,.0f} rows/s  ({seconds:.2f} s, {args.rows / cpu:,.0f} rows per CPU-second)")

    export_big = peak_mib(lambda: export_file(out))
    export_all = peak_mib(lambda: export_loading_everything(out))
    empty()
    import_small = peak_mib(lambda: import_file(small))
    export_small = peak_mib(lambda: export_file(out))
    empty()
    import_big = peak_mib(lambda: import_file(big))
    print(f"peak memory, import  {args.rows // 10:>7,} rows: {import_small:6.1f} MiB   {args.rows:,} rows: {import_big:6.1f} MiB")
    print(f"peak memory, export  {args.rows // 10:>7,} rows: {export_small:6.1f} MiB   {args.rows:,} rows: {export_big:6.1f} MiB"
          f"   (loading every row first: {export_all:.1f} MiB, x{export_all / export_big:.0f})")
    addresses = [row[0] for row in csv.reader(big.open(encoding="utf-8"))][1:]
    plain = len(addresses) / timed(lambda: [validate_email(a, check_deliverability=False) for a in addresses])[1]
    ours = len(addresses) / timed(lambda: [normalise_email(a) for a in addresses])[1]
    print(f"address checks: normalise_email {ours:,.0f}/CPU-second, email-validator on every address {plain:,.0f}"
          f" (x{ours / plain:.1f})")
    engine.dispose()


if __name__ == "__main__":
    main()
