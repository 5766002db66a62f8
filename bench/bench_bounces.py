"""Bounce processing benchmark: a Maildir of N bounces for one send, classified, applied and moved.

    python bench/bench_bounces.py                 # 1000 and 10000 messages
    python bench/bench_bounces.py --sizes 600

The mailbox is shaped like a bad month: per 20 messages, 12 permanent failures
(Postfix, Exim, Microsoft 365 and Gmail styles), 4 delayed-delivery warnings,
1 complaint, 2 out-of-office replies and 1 broken message. Each size runs on a
fresh SQLite file. In the same run, the floor: reading and parsing the same
messages with the standard library alone. Prints messages/s and the ratio.
"""

from __future__ import annotations

import argparse
import mailbox
import re
import sys
import tempfile
import time
from email import message_from_bytes
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "tests" / "bounces" / "corpus"
# corpus file -> (how many per 20 messages, the address it names)
MIX = {
    "postfix-user-unknown.eml": (3, "rhys.jones@example.net"),
    "exim-user-unknown.eml": (3, "megan.morgan@cardiff.example.org"),
    "m365-recipient-not-found.eml": (3, "dafydd.evans@old-council.example.org"),
    "gmail-no-such-user.eml": (3, "owen.thomas@example.net"),
    "postfix-mailbox-full-delayed.eml": (4, "sian.price@example.com"),
    "arf-complaint.eml": (1, "gareth.hughes@example.com"),
    "out-of-office.eml": (2, "eleri.wyn@example.co.uk"),
    "malformed-mime.eml": (1, "nia.roberts@example.org"),
}
RETURN_PATH = re.compile(rb"bounces\+\d+-[0-9a-f]+@example\.org")
MESSAGE_ID = re.compile(rb"^(Message-I[Dd]: <)", re.MULTILINE)


def bounces(settings, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """`count` messages from the corpus, each naming delivery i (i = 1..count) and subscriber i."""
    from mailer.bounces.verp import return_path_for

    plan = [name for name, (share, _) in MIX.items() for _ in range(share)]
    messages = []
    for number in range(1, count + 1):
        name = plan[(number - 1) % len(plan)]
        data = (CORPUS / name).read_bytes().replace(MIX[name][1].encode(), f"person{number}@example.net".encode())
        data = RETURN_PATH.sub(return_path_for(settings, number).encode(), data)
        messages.append(MESSAGE_ID.sub(rb"\g<1>bench-%d." % number, data, count=1))
    return messages


def prepare(folder: Path, count: int):  # type: ignore[no-untyped-def]
    from mailer.config import Settings
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus
    from mailer.store.subscribers import add_subscriber

    settings = Settings(secret_key="bench-secret-key-0123456789", sender_address="news@example.org",
                        database_url=f"sqlite:///{folder / 'bench.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with new_session(engine) as session:
        send = Send(issue_slug="bench", title="Bench", status=SendStatus.finished, content=b"{}")
        session.add(send)
        session.flush()
        for number in range(1, count + 1):
            subscriber = add_subscriber(session, email=f"person{number}@example.net")
            session.add(Delivery(id=number, send_id=send.id, subscriber_id=subscriber.id, email=subscriber.email,
                                 status=DeliveryStatus.sent))
        session.commit()
    box = mailbox.Maildir(folder / "Maildir", create=True)
    for data in bounces(settings, count):
        box.add(data)
    box.close()
    return settings, engine


def floor(path: Path) -> float:
    """Seconds to read and parse every message with the standard library alone."""
    started = time.perf_counter()
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.keys()):
        message_from_bytes(box.get_bytes(key))
    return time.perf_counter() - started


def run(count: int) -> None:
    from mailer.bounces import process_mailbox

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings, engine = prepare(folder, count)
        baseline = floor(folder / "Maildir")
        started = time.perf_counter()
        report = process_mailbox(settings, str(folder / "Maildir"), engine=engine)
        elapsed = time.perf_counter() - started
        engine.dispose()
    print(f"{count:>6} messages: {elapsed:6.2f} s, {count / elapsed:7.0f} messages/s; "
          f"floor (read + parse only) {baseline:5.2f} s, ratio {elapsed / baseline:5.1f}x  [{report}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated message counts")
    for size in parser.parse_args().sizes.split(","):
        run(int(size))


if __name__ == "__main__":
    main()
