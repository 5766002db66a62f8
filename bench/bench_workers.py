"""Scale-out benchmark: one send of 100,000 recipients on PostgreSQL, sent by 1, 2 and 4 `mailer worker` processes.

    python bench/bench_workers.py                                # 100,000 recipients; 1, 2 and 4 workers
    python bench/bench_workers.py --recipients 20000 --workers 1,2 --connections 1

Needs PostgreSQL (MAILER_TEST_POSTGRES_URL names the server, default the local test server)
and Postfix's `smtp-sink` (`bash .ci/system-deps` installs it). For each number of workers:
a fresh database seeded here with the send started (every delivery queued), a fresh
`smtp-sink -c` counting the messages it accepts, then that many `mailer worker --send 1
--once` processes started together, timed from their start until the last one exits.
Prints messages/s, the ratio to one worker measured in the same run, duplicates (messages
the sink accepted beyond the deliveries recorded `sent`), losses (deliveries not `sent`),
and the peak memory of each worker process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_send import SMTP_SINK, free_port, seed  # noqa: E402

from bench.common import wait_for_port  # noqa: E402

POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def counting_sink():
    """`smtp-sink -c` on loopback; yields (port, a function returning how many messages it accepted so far)."""
    if not os.path.exists(SMTP_SINK):
        sys.exit(f"{SMTP_SINK} is missing: run `bash .ci/system-deps` (it installs postfix)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen([SMTP_SINK, "-c", *user, f"127.0.0.1:{port}", "1000"], stdout=subprocess.PIPE)
    counted = [0]

    def read() -> None:  # "sess=N quit=N mesg=N\r" after each event
        buffer = b""
        while chunk := process.stdout.read1(65536):  # type: ignore[union-attr]
            buffer += chunk
            *lines, buffer = buffer.split(b"\r")
            for line in lines:
                if b"mesg=" in line:
                    counted[0] = int(line.rsplit(b"mesg=", 1)[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for_port(port)
        yield port, lambda: counted[0]
    finally:
        process.terminate()
        process.wait()
        reader.join(5)


@contextmanager
def fresh_database():
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"bench_workers_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def settings_for(url: str, port: int, connections: int):  # type: ignore[no-untyped-def]
    from mailer.config import Settings

    return Settings(
        secret_key="bench-secret-key-0123456789", database_url=url, sender_address="news@example.org",
        sender_name="Network News", base_url="https://news.example.org", smtp_host="127.0.0.1", smtp_port=port,
        smtp_security="none", smtp_connections=connections, templates_dir=str(ROOT / "mailer" / "templates"),
        languages=["en", "cy"],
    )


def started_send(settings, count: int) -> int:  # type: ignore[no-untyped-def]
    """Seed `count` subscribers and a send to them, then start it: every delivery queued, status `sending`."""
    from mailer.delivery.sends import start
    from mailer.store.db import make_engine, new_session

    send_id = seed(settings, count)
    engine = make_engine(settings.database_url)
    with new_session(engine) as session:
        start(session, send_id=send_id)
    engine.dispose()
    return send_id


def outcome(url: str, send_id: int) -> tuple[int, int]:
    """(deliveries recorded sent, deliveries in all)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        sent, total = connection.execute(text(
            "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM delivery WHERE send_id = :id"),
            {"id": send_id}).one()
    engine.dispose()
    return sent, total


def run_workers(settings, send_id: int, workers: int, folder: Path) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """Start `workers` processes together; returns the seconds until the last exits and each one's peak MB."""
    env = {**os.environ, **{f"MAILER_{key.upper()}": str(value) for key, value in settings.model_dump().items()
                            if isinstance(value, str | int | float) and not isinstance(value, bool)}}
    env["MAILER_LANGUAGES"] = '["en", "cy"]'
    logs = [folder / f"worker-{n}.log" for n in range(workers)]
    started = time.perf_counter()
    pids = []
    for log in logs:
        with log.open("w") as out:
            pids.append(subprocess.Popen([sys.executable, "-m", "mailer", "worker", "--send", str(send_id), "--once"],
                                         env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT).pid)
    peaks = []
    for pid, log in zip(pids, logs, strict=True):
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"a worker failed:\n{log.read_text()}")
        peaks.append(usage.ru_maxrss / 1024)
    return time.perf_counter() - started, peaks


def measure(workers: int, count: int, connections: int) -> dict:
    with counting_sink() as (port, accepted), fresh_database() as url, tempfile.TemporaryDirectory() as folder:
        settings = settings_for(url, port, connections)
        send_id = started_send(settings, count)
        elapsed, peaks = run_workers(settings, send_id, workers, Path(folder))
        time.sleep(0.5)  # the sink prints its count just after it answers the last message
        sent, total = outcome(url, send_id)
        return {"workers": workers, "elapsed": elapsed, "rate": sent / elapsed, "duplicates": accepted() - sent,
                "losses": total - sent, "peaks": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated numbers of worker processes")
    parser.add_argument("--connections", type=int, default=2, help="smtp_connections of each worker")
    args = parser.parse_args()
    print(f"{args.recipients} recipients, PostgreSQL, smtp-sink; {args.connections} SMTP connection(s) per worker; "
          f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7} {'msg/s':>7} {'ratio':>6} {'time s':>7} {'dupes':>5} {'losses':>6}   peak MB per process")
    baseline = None
    for workers in [int(n) for n in args.workers.split(",")]:
        result = measure(workers, args.recipients, args.connections)
        baseline = baseline or result["rate"]
        print(f"{workers:>7} {result['rate']:>7.0f} {result['rate'] / baseline:>5.2f}x {result['elapsed']:>7.1f} "
              f"{result['duplicates']:>5} {result['losses']:>6}   {' '.join(f'{p:.0f}' for p in result['peaks'])}"
              f"  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
