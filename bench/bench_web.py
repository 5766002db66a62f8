"""Subscriber pages benchmark: `mailer serve` on loopback answering the requests a big send brings.

    python bench/bench_web.py                 # 400 requests per kind
    python bench/bench_web.py --requests 1000

A real server process (uvicorn through `mailer serve`, SQLite file, 2,000
subscribers, one finished send of the sample issue) and one keep-alive client
in this process. For each kind of request: requests/s, mean and 95th-percentile
time, and the ratio to the floor measured in the same run: the stylesheet,
served by the same stack with no token, database or template work.
One-click unsubscribes each go to a different subscriber (each is a write and a
commit). Loopback only; the loops are bounded by count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from mailer.config import Settings  # noqa: E402
from mailer.delivery.sends import create_send  # noqa: E402
from mailer.store import subscribers  # noqa: E402
from mailer.store.db import make_engine, new_session, upgrade  # noqa: E402
from mailer.store.models import SendStatus  # noqa: E402
from mailer.store.topics import add_topic  # noqa: E402
from mailer.tokens import archive_url, preferences_url, unsubscribe_url  # noqa: E402
from tests.fixtures.smtp import free_port  # noqa: E402

SUBSCRIBERS = 2000


def prepare(folder: Path, port: int) -> tuple[Settings, int]:
    settings = Settings(secret_key="bench-secret-key-0123456789", database_url=f"sqlite:///{folder / 'mailer.db'}",
                        base_url=f"http://127.0.0.1:{port}", outbox_dir=str(folder / "outbox"))
    (folder / "mailer.toml").write_text(f'secret_key = "{settings.secret_key}"\n'
                                        f'database_url = "{settings.database_url}"\n'
                                        f'base_url = "{settings.base_url}"\n')
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with new_session(engine) as db:
        add_topic(db, name="news")
        for number in range(SUBSCRIBERS):
            subscribers.add_subscriber(db, email=f"reader{number}@example.org", name=f"Reader {number}")
        db.commit()
        send = create_send(db, settings=settings, issue_path=ROOT / "issues" / "2026-12-network-launch.yaml")
        send.status, send.started_at, send.finished_at = SendStatus.finished, datetime.now(), datetime.now()
        db.add(send)
        db.commit()
        send_id = send.id
    engine.dispose()
    return settings, send_id


def measure(client: httpx.Client, requests: list[tuple[str, str, dict]]) -> list[float]:
    times = []
    for method, url, options in requests:
        started = time.perf_counter()
        response = client.request(method, url, **options)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per kind (at most the subscriber count)")
    count = min(parser.parse_args().requests, SUBSCRIBERS)
    with tempfile.TemporaryDirectory() as tmp:
        folder, port = Path(tmp), free_port()
        settings, send_id = prepare(folder, port)
        server = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", str(port)], cwd=folder,
                                  env={**os.environ, "MAILER_CONFIG": str(folder / "mailer.toml")},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(timeout=10) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        client.get(f"{settings.base_url}/static/site.css")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            sys.exit("the server did not start")
                        time.sleep(0.1)
                one_click = {"content": b"List-Unsubscribe=One-Click",
                             "headers": {"content-type": "application/x-www-form-urlencoded"}}
                kinds = {
                    "stylesheet (floor)": [("GET", f"{settings.base_url}/static/site.css", {})] * count,
                    "unsubscribe page (GET /u/…)": [("GET", unsubscribe_url(settings, n + 1), {}) for n in range(count)],
                    "preferences page (GET /p/…)": [("GET", preferences_url(settings, n + 1), {}) for n in range(count)],
                    "one-click unsubscribe (POST /u/…)": [("POST", unsubscribe_url(settings, n + 1), one_click)
                                                         for n in range(count)],
                    "web version (GET /archive/ID)": [("GET", archive_url(settings, send_id), {})] * count,
                    "Atom feed": [("GET", f"{settings.base_url}/archive/feed.atom", {})] * count,
                }
                results = {name: measure(client, requests) for name, requests in kinds.items()}
        finally:
            server.terminate()
            server.wait(timeout=10)
    floor = statistics.mean(results["stylesheet (floor)"])
    print(f"{count} requests per kind, one keep-alive client, server `mailer serve` (SQLite), {os.cpu_count()} cores")
    print(f"{'request':38} {'req/s':>8} {'mean ms':>8} {'p95 ms':>8} {'x floor':>8}")
    for name, times in results.items():
        mean, p95 = statistics.mean(times), statistics.quantiles(times, n=20)[18]
        print(f"{name:38} {1 / mean:8.0f} {mean * 1000:8.2f} {p95 * 1000:8.2f} {mean / floor:8.1f}")


if __name__ == "__main__":
    main()
