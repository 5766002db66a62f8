"""Bounce benchmark: how well and how fast messages are classified, and how fast a mailbox is processed.

    python bench/bench_bounces.py                         # the project's labelled corpus, then 1000 and 10000 messages
    python bench/bench_bounces.py --corpus DIR            # any folder of labelled messages (only that)
    python bench/bench_bounces.py --corpus DIR --errors   # ... and list every message judged wrongly
    python bench/bench_bounces.py --sizes 600             # only the mailbox run

**Labelled folders.** Either a `labels.csv` in the folder, with a header row and the
columns `file` (a path relative to the folder) and `label` (more columns are
ignored), or one subfolder per label holding the messages (`DIR/permanent/x.eml`).
Labels: `permanent` (a hard bounce: the address is bad), `temporary` (a soft
bounce, a delay, a block, any failure that is not the address's), `complaint`,
`unsubscribe` (an ARF opt-out or a mail to a signed unsubscribe address), `none`
(auto-replies, delivery notices, read receipts, anything that is not a bounce).
`hard`, `soft`, `feedback` and `not-bounce` are read as `permanent`, `temporary`,
`complaint` and `none`. `tests/bounces/corpus/labelled/` is such a folder.

It prints the precision and recall of permanent verdicts (per message: the
newsletter sends one recipient per message), complaint recall, how many
non-bounces were left alone, skips (messages refused as malformed), exceptions,
and messages/s of classification alone, by the CPU time of the process (on a
shared machine the wall clock also counts other programs' turns; both are
printed). The signature check of return paths is
part of classification; looking deliveries up is not (that needs the database).

**Mailbox run.** A Maildir of N bounces for one send, shaped like a bad month (per
20 messages: 12 permanent failures, 4 delay warnings, 1 complaint, 2
out-of-office replies, 1 broken message), classified, applied through the
store's services and moved, on a fresh SQLite file; the floor in the same run
is reading and parsing the same messages with the standard library alone.
"""

from __future__ import annotations

import argparse
import csv
import mailbox
import re
import sys
import tempfile
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "tests" / "bounces" / "corpus"
LABELLED = CORPUS / "labelled"
LABELS = ("permanent", "temporary", "complaint", "unsubscribe", "none")
SYNONYMS = {"hard": "permanent", "soft": "temporary", "feedback": "complaint", "not-bounce": "none", "": "none"}
MIN_SECONDS = 2.0  # classify the folder repeatedly until this long has passed, for a steadier rate

# corpus file -> (how many per 20 messages, the address it names)
MIX = {
    "postfix-user-unknown.eml": (3, "rhys.jones@example.net"),
    "exim-user-unknown.eml": (3, "megan.morgan@cardiff.example.org"),
    "m365-recipient-not-found.eml": (3, "dafydd.evans@old-council.example.org"),
    "gmail-no-such-user.eml": (3, "owen.thomas@example.net"),
    "postfix-mailbox-full-delayed.eml": (4, "sian.price@example.com"),
    "arf-complaint.eml": (1, "gareth.hughes@example.com"),
    "out-of-office.eml": (2, "eleri.wyn@example.co.uk"),
    "broken-unreadable.eml": (1, "nobody"),
}
RETURN_PATH = re.compile(rb"bounces\+\d+-[0-9a-f]+@example\.org")
OUR_MESSAGE_ID = re.compile(rb"<174108252901\.1\.\d+@example\.org>")  # the corpus' deliveries' Message-IDs
MESSAGE_ID = re.compile(rb"^(Message-I[Dd]: <)", re.MULTILINE)


def bench_settings(database_url: str = "sqlite://"):  # type: ignore[no-untyped-def]
    from mailer.config import Settings

    return Settings(secret_key="bench-secret-key-0123456789", sender_address="news@example.org", database_url=database_url)


# ---- a labelled folder ---------------------------------------------------------------------------


def labelled(folder: Path) -> list[tuple[str, str, bytes]]:
    """(name, label, bytes) of every labelled message in the folder."""
    labels_file = folder / "labels.csv"
    if labels_file.is_file():
        with labels_file.open(newline="", encoding="utf-8") as handle:
            pairs = [(row["file"], row["label"]) for row in csv.DictReader(handle)]
    else:
        pairs = [(str(path.relative_to(folder)), path.parent.name) for path in sorted(folder.glob("*/*")) if path.is_file()]
    messages = []
    for name, label in pairs:
        label = SYNONYMS.get(label.strip().lower(), label.strip().lower())
        if label not in LABELS:
            sys.exit(f"{folder}: {name}: unknown label {label!r} (use one of {', '.join(LABELS)})")
        messages.append((name, label, (folder / name).read_bytes()))
    return messages


def verdict(settings, data: bytes) -> str:  # type: ignore[no-untyped-def]
    """What the mailbox reader would do with a message: a label, `skipped` or `exception`."""
    from mailer.bounces.classify import MalformedMessage, classify
    from mailer.bounces.unsubscribe import request_in

    try:
        if request_in(settings, data) is not None:
            return "unsubscribe"
        result = classify(settings, data)
    except MalformedMessage:
        return "skipped"
    except Exception:  # noqa: BLE001 - counted, never hidden
        return "exception"
    if result.opt_out:
        return "unsubscribe"
    return str(result.kind) if result.kind else "none"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} % ({part}/{whole})" if whole else "  n/a"


def judge_folder(folder: Path, show_errors: bool) -> None:
    settings = bench_settings()
    messages = labelled(folder)
    if not messages:
        sys.exit(f"{folder}: no labelled messages")
    found = {name: verdict(settings, data) for name, _, data in messages}
    rounds, started, cpu = 0, time.perf_counter(), time.process_time()
    while rounds == 0 or time.perf_counter() - started < MIN_SECONDS:
        for _, _, data in messages:
            verdict(settings, data)
        rounds += 1
    wall_rate = rounds * len(messages) / (time.perf_counter() - started)
    cpu_rate = rounds * len(messages) / (time.process_time() - cpu)

    pairs = [(label, found[name]) for name, label, _ in messages]
    labelled_as = Counter(label for label, _ in pairs)
    right = Counter(label for label, got in pairs if label == got)
    said_permanent = sum(got == "permanent" for _, got in pairs)
    print(f"{folder}: {len(messages)} messages ({', '.join(f'{number} {label}' for label, number in labelled_as.items())})")
    print(f"  permanent verdicts: precision {share(right['permanent'], said_permanent)},"
          f" recall {share(right['permanent'], labelled_as['permanent'])}")
    for label, title in (("complaint", "complaint recall"), ("unsubscribe", "unsubscribe recall"),
                         ("temporary", "temporary kept temporary"), ("none", "non-bounces left alone")):
        print(f"  {title:<25} {share(right[label], labelled_as[label])}")
    print(f"  skipped (malformed)       {share(sum(got == 'skipped' for _, got in pairs), len(pairs))}")
    print(f"  exceptions                {sum(got == 'exception' for _, got in pairs)}")
    print(f"  classification            {cpu_rate:7.0f} messages/s of CPU time ({wall_rate:.0f} by the wall clock,"
          f" which counts the time other programs had the CPU)")
    if show_errors:
        for name, label, _ in messages:
            if found[name] != label:
                print(f"  {name}: labelled {label}, judged {found[name]}")


# ---- a mailbox run -------------------------------------------------------------------------------


def bounces(settings, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """`count` messages from the corpus, each naming delivery i (i = 1..count) and subscriber i."""
    from mailer.bounces.verp import return_path_for

    plan = [name for name, (times, _) in MIX.items() for _ in range(times)]
    messages = []
    for number in range(1, count + 1):
        name = plan[(number - 1) % len(plan)]
        data = (CORPUS / name).read_bytes().replace(MIX[name][1].encode(), f"person{number}@example.net".encode())
        data = RETURN_PATH.sub(return_path_for(settings, number).encode(), data)
        data = OUR_MESSAGE_ID.sub(message_id(number).encode(), data)
        messages.append(MESSAGE_ID.sub(rb"\g<1>bench-%d." % number, data, count=1))
    return messages


def message_id(number: int) -> str:
    return f"<{number}.bench@example.org>"


def prepare(folder: Path, count: int):  # type: ignore[no-untyped-def]
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus
    from mailer.store.subscribers import add_subscriber

    settings = bench_settings(f"sqlite:///{folder / 'bench.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with new_session(engine) as session:
        send = Send(issue_slug="bench", title="Bench", status=SendStatus.finished, content=b"{}")
        session.add(send)
        session.flush()
        for number in range(1, count + 1):
            subscriber = add_subscriber(session, email=f"person{number}@example.net")
            session.add(Delivery(id=number, send_id=send.id, subscriber_id=subscriber.id, email=subscriber.email,
                                 status=DeliveryStatus.sent, message_id=message_id(number)))
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
        started, cpu = time.perf_counter(), time.process_time()
        report = process_mailbox(settings, str(folder / "Maildir"), engine=engine)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
    print(f"{count:>6} messages: {elapsed:6.2f} s, {count / elapsed:7.0f} messages/s ({cpu:5.2f} s of CPU time,"
          f" {count / cpu:.0f} messages/s); floor (read + parse only) {baseline:5.2f} s, ratio {elapsed / baseline:5.1f}x"
          f"  [{report}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a folder of labelled messages (then no mailbox run)")
    parser.add_argument("--errors", action="store_true", help="list every message judged differently from its label")
    parser.add_argument("--sizes", help="comma-separated message counts of the mailbox run (then no labelled folder)")
    arguments = parser.parse_args()
    if arguments.corpus or not arguments.sizes:
        judge_folder(arguments.corpus or LABELLED, arguments.errors)
    if not arguments.corpus:
        for size in (arguments.sizes or "1000,10000").split(","):
            run(int(size))


if __name__ == "__main__":
    main()
