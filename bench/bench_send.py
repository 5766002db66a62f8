"""Delivery benchmark: one built issue to 600, 10,000 and 100,000 recipients through a local SMTP sink.

    python bench/bench_send.py                      # 600, 10000, 100000; without and with DKIM
    python bench/bench_send.py --sizes 600,10000 --no-dkim

Each size is seeded here and sent by a fresh child process (so its peak memory is
that of `mailer send` alone) against
Postfix's `smtp-sink` on loopback (aiosmtpd when smtp-sink is not installed),
with rate limiting off. In the same run, the raw floor: the same number of
pre-built identical messages pushed through plain smtplib on the same number of
connections. Prints messages/s, the ratio to the floor, the peak memory of the
send process (and how it grows from the smallest list to the largest: it should
not), and where the time went (personalising, building, database, SMTP).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import wait_for_port  # noqa: E402

ISSUE = ROOT / "issues" / "2026-12-network-launch.yaml"
SEND_ID = 1
SMTP_SINK = "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def sink():
    """A local SMTP server that accepts and discards everything: smtp-sink, or aiosmtpd as a fallback."""
    port = free_port()
    if os.path.exists(SMTP_SINK):
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{port}", "1000"])
        wait_for_port(port)
        try:
            yield port, "smtp-sink"
        finally:
            process.terminate()
            process.wait()
    else:
        from aiosmtpd.controller import Controller

        class Discard:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                return "250 OK"

        controller = Controller(Discard(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield port, "aiosmtpd"
        finally:
            controller.stop()


def settings_for(folder: Path, port: int, *, dkim: bool, connections: int):  # type: ignore[no-untyped-def]
    from mailer.config import Settings
    from mailer.delivery.dkim import generate_key

    extra = {}
    if dkim:
        private = folder / "dkim" / "bench.private"
        if not private.exists():
            generate_key(folder / "dkim", "bench")
        extra = {"dkim_selector": "bench", "dkim_private_key": str(private)}
    return Settings(
        secret_key="bench-secret-key-0123456789", database_url=f"sqlite:///{folder / 'bench.db'}",
        sender_address="news@example.org", sender_name="Network News", base_url="https://news.example.org",
        smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_connections=connections,
        templates_dir=str(ROOT / "mailer" / "templates"), languages=["en", "cy"], **extra,
    )


def seed(settings, count: int) -> int:  # type: ignore[no-untyped-def]
    """`count` active subscribers in topic "news" (one in five Welsh), written directly; returns the send id."""
    from sqlalchemy import insert, literal, select

    from mailer.delivery.sends import create_send
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import Subscriber, SubscriberTopic, Topic, utcnow

    engine = make_engine(settings.database_url)
    upgrade(engine)
    now = utcnow()
    with new_session(engine) as session:
        topic = Topic(name="news")
        session.add(topic)
        session.commit()
        for start in range(0, count, 10_000):
            rows = [{"email": f"reader{n}@example.net", "email_key": f"reader{n}@example.net",
                     "name": f"Reader {n}" if n % 3 else "Siân ap Rhys", "language": "cy" if n % 5 == 0 else "en",
                     "status": "active", "source": "bench", "consent_text": "", "created_at": now,
                     "status_changed_at": now} for n in range(start, min(count, start + 10_000))]
            session.execute(insert(Subscriber), rows)
        session.execute(insert(SubscriberTopic).from_select(
            ["subscriber_id", "topic_id"], select(Subscriber.id, literal(topic.id))))
        session.commit()
        send = create_send(session, settings=settings, issue_path=ISSUE)
    engine.dispose()
    return send.id


def personalise_seconds(settings, send_id: int, count: int) -> float:  # type: ignore[no-untyped-def]
    """Time of the per-recipient personalising alone (signed links, then the Personaliser's pieces),
    measured on up to 5,000 recipients and scaled to `count`."""
    from mailer.content import Personaliser
    from mailer.delivery.sends import get_send, rendered_variants
    from mailer.store.db import make_engine, new_session
    from mailer.tokens import archive_url, preferences_url, unsubscribe_url

    engine = make_engine(settings.database_url)
    with new_session(engine) as session:
        rendered = rendered_variants(get_send(session, send_id=send_id))["en"]
    personaliser = Personaliser(rendered)
    sample = min(count, 5000)
    started = time.perf_counter()
    for n in range(sample):
        values = {"name": f"Reader {n}", "email": f"reader{n}@example.net", "web_url": archive_url(settings, send_id),
                  "unsubscribe_url": unsubscribe_url(settings, n), "preferences_url": preferences_url(settings, n)}
        personaliser.html_pieces(values)
        personaliser.text_pieces(values)
    return (time.perf_counter() - started) * count / sample


def child(folder: Path, size: int, port: int, dkim: bool, connections: int) -> dict:
    """One measured send of a seeded database, in its own process (so its peak memory is its own)."""
    from mailer.delivery.engine import deliver

    settings = settings_for(folder, port, dkim=dkim, connections=connections)
    started = time.perf_counter()
    report = deliver(settings, SEND_ID)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert report.counts["sent"] == size, report
    timings = dict(report.timings)
    timings["personalise"] = personalise_seconds(settings, SEND_ID, size)
    return {"size": size, "elapsed": elapsed, "rate": size / elapsed, "timings": timings, "peak_mb": peak}


def measure(size: int, port: int, dkim: bool, connections: int) -> dict:
    """Seed a fresh database here, then send it from a child process."""
    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    try:
        settings = settings_for(folder, port, dkim=dkim, connections=connections)
        assert seed(settings, size) == SEND_ID
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(folder), str(size), str(port), "1" if dkim else "0",
             str(connections)], check=True, capture_output=True, text=True).stdout
        return json.loads(output.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sample_message(settings, send_id: int) -> bytes:  # type: ignore[no-untyped-def]
    """One message of the send, built the way the engine builds them."""
    from mailer.delivery.dkim import signer_for
    from mailer.delivery.message import MessageBuilder, Recipient
    from mailer.delivery.sends import get_send, rendered_variants
    from mailer.store.db import make_engine, new_session

    engine = make_engine(settings.database_url)
    with new_session(engine) as session:
        send = get_send(session, send_id=send_id)
        builder = MessageBuilder(settings, rendered_variants(send), send_id=send_id, signer=signer_for(settings))
    return builder.build(Recipient(email="reader1@example.net", name="Reader 1", subscriber_id=1, delivery_id=1))


def raw_floor(port: int, count: int, connections: int, message: bytes) -> float:
    """Messages/s of plain smtplib pushing one pre-built message `count` times over `connections` connections."""
    def push(share: int) -> None:
        client = smtplib.SMTP("127.0.0.1", port)
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.ehlo()
        for n in range(share):
            client.sendmail("bounces@example.org", [f"reader{n}@example.net"], message)
        client.quit()

    shares = [count // connections + (1 if n < count % connections else 0) for n in range(connections)]
    threads = [threading.Thread(target=push, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started)


def floor_message(port: int) -> bytes:
    folder = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        settings = settings_for(folder, port, dkim=False, connections=1)
        return sample_message(settings, seed(settings, 1))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="600,10000,100000", help="comma-separated recipient counts")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--no-dkim", action="store_true", help="skip the runs with DKIM signing")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, size, port, dkim, connections = args.child
        print(json.dumps(child(Path(folder), int(size), int(port), dkim == "1", int(connections))))
        return

    sizes = [int(size) for size in args.sizes.split(",")]
    with sink() as (port, server):
        message = floor_message(port)
        print(f"server: {server} on 127.0.0.1:{port}; {args.connections} connection(s); "
              f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; message {len(message) / 1024:.1f} KB")
        print(f"{'recipients':>10} {'dkim':>4} {'msg/s':>7} {'floor/s':>7} {'ratio':>6} {'peak MB':>7}   "
              f"time split (personalise / build / database / smtp, seconds)")
        for dkim in ([False] if args.no_dkim else [False, True]):
            peaks = {}
            for size in sizes:
                floor = raw_floor(port, size, args.connections, message)
                result = measure(size, port, dkim, args.connections)
                peaks[size] = result["peak_mb"]
                t = result["timings"]
                build = t.get("build", 0) - t["personalise"]
                database = t.get("database", 0) + t.get("claim", 0)
                print(f"{size:>10} {'yes' if dkim else 'no':>4} {result['rate']:>7.0f} {floor:>7.0f} "
                      f"{result['rate'] / floor:>6.0%} {result['peak_mb']:>7.0f}   "
                      f"{t['personalise']:.2f} / {build:.2f} / {database:.2f} / {t.get('smtp', 0):.2f}"
                      f"  (total {result['elapsed']:.1f} s)")
            smallest, largest = min(peaks), max(peaks)
            print(f"peak memory of the send process{' with DKIM' if dkim else ''}: "
                  + ", ".join(f"{peak:.0f} MB at {size:,}" for size, peak in peaks.items())
                  + f"; {peaks[largest] - peaks[smallest]:+.0f} MB from {smallest:,} to {largest:,} recipients")

if __name__ == "__main__":
    main()
