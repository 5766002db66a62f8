"""`mailer stats`: joins, leaves, bounces and complaints per month, from a seeded history."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import time_machine

from mailer.bounces.classify import Classification, Failure
from mailer.bounces.policy import record
from mailer.store.models import BounceKind, utcnow
from mailer.store.stats import history
from mailer.store.subscribers import add_subscriber, confirm, subscribe_pending, unsubscribe
from tests.fixtures.history import report_bounce


def month_start(months_back: int, now: datetime) -> datetime:
    """One second into the month `months_back` before `now`'s (UTC)."""
    year, month = now.year, now.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, 0, 0, 1, tzinfo=UTC)


def seed(session, settings, now: datetime) -> None:
    """Two months ago: 3 joined, 1 left. Last month: 2 joined (one by confirming), a hard and a soft bounce
    and a complaint. This month: 1 joined, 2 left."""
    plan = {
        2: dict(joined=["a", "b", "c"], left=["a"]),
        1: dict(joined=["d"], confirmed=["e"], bounces=[("b", BounceKind.permanent), ("c", BounceKind.temporary),
                                                        ("d", BounceKind.complaint)]),
        0: dict(joined=["f"], left=["c", "e"]),
    }
    people = {}
    for back in (2, 1, 0):
        with time_machine.travel(month_start(back, now), tick=False):
            steps = plan[back]
            for name in steps.get("joined", []):
                people[name] = add_subscriber(session, email=f"{name}@example.org")
            for name in steps.get("confirmed", []):
                pending = subscribe_pending(session, email=f"{name}@example.org", name="", language="en", topics=[],
                                            source="web", consent_text="yes")
                people[name] = confirm(session, subscriber_id=pending.id)
            for name in steps.get("left", []):
                unsubscribe(session, subscriber_id=people[name].id, channel="web")
            for n, (name, kind) in enumerate(steps.get("bounces", [])):
                report_bounce(session, settings, people[name], kind, f"<{back}.{n}@mx.example>")
            if back == 1:  # a report about no message of ours (maybe forged) changes nothing, and is not counted
                record(session, settings, Classification("<forged@mx.example>",
                                                         (Failure("a@example.org", BounceKind.permanent, "5.1.1"),), ()))
            session.commit()


def test_history_counts_each_month(session, settings):
    now = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
    seed(session, settings, now)
    months = history(session, months=4, now=now.replace(tzinfo=None))
    assert [m.month for m in months] == ["2026-12", "2027-01", "2027-02", "2027-03"]
    assert [(m.joined, m.left, m.bounces, m.complaints) for m in months] == [
        (0, 0, 0, 0), (3, 1, 0, 0), (2, 0, 2, 1), (1, 2, 0, 0)]


def test_mailer_stats_draws_the_seeded_history(session, settings, cli):
    now = utcnow().replace(tzinfo=UTC)
    seed(session, settings, now)
    result = cli("stats", "--months", "3")
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [cell.strip() for cell in re.split("[│┃]", line)]
        if re.fullmatch(r"\d{4}-\d{2}", cells[0]):
            rows[cells[0]] = [cell.split(" ")[0] for cell in cells[1:5]]  # each number is followed by its bar
    assert list(rows.values()) == [["3", "1", "0", "0"], ["2", "0", "2", "1"], ["1", "2", "0", "0"]]
    assert "█" in result.output  # bars, not only numbers
