"""Counted links (`link_counts = true`): the same address for every reader, totals only, never an open redirect."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from mailer.cli.common import console
from mailer.delivery.clicks import link_totals
from mailer.delivery.engine import deliver
from mailer.delivery.sends import create_send
from mailer.store.models import LinkCount
from mailer.store.topics import add_topic
from mailer.tokens import Purpose, make_token, read_token
from tests.delivery.helpers import SAMPLE_ISSUE
from tests.web.helpers import outbox, run_cli, table_rows


@pytest.fixture
def counting(settings):
    return settings.model_copy(update={"link_counts": True})


@pytest.fixture
def sent(counting, db, person):
    add_topic(db, name="news")
    db.commit()
    person("ann@example.org", name="Ann", topics=["news"])
    person("bryn@example.org", name="Bryn", language="cy", topics=["news"])
    send = create_send(db, settings=counting, issue_path=SAMPLE_ISSUE)
    deliver(counting, send.id)
    return send.id


def hrefs(message) -> list[str]:
    return re.findall(r'href="([^"]+)"', message.get_body(("html",)).get_content())


def counted(message) -> list[str]:
    html = [url for url in hrefs(message) if "/l/" in url]
    text = re.findall(r"https://news\.example\.org/l/\S+", message.get_body(("plain",)).get_content())
    return html + text


def test_every_reader_gets_the_same_counted_links_with_nothing_about_them(counting, db, sent):
    ann, bryn = (next(m for m in outbox(counting) if who in m["To"]) for who in ("ann@", "bryn@"))
    assert set(counted(ann)) & set(counted(bryn))  # the very same addresses in two readers' emails
    for url in set(counted(ann)) | set(counted(bryn)):
        payload = read_token(counting, Purpose.link, url.rsplit("/", 1)[1])
        assert payload[0] == sent and len(payload) == 2  # the send and a position: no reader
    # The reader's own links still go to their pages, and every link of the issue goes through /l/.
    assert any("/u/" in url for url in hrefs(ann)) and any("/archive/" in url for url in hrefs(ann))
    assert not any(url.startswith("https://example.org/") for url in hrefs(ann))
    assert "https://example.org/" not in ann.get_body(("plain",)).get_content()


def test_a_counted_link_goes_to_its_own_link_and_adds_one(client, counting, db, sent):
    ann = next(m for m in outbox(counting) if "ann@" in m["To"])
    first = counted(ann)[0]
    answers = [client.get(first) for _ in range(3)]
    destination = answers[0].headers["location"]
    assert all(a.status_code == 302 and a.headers["location"] == destination for a in answers)
    assert destination.startswith("https://example.org/")
    totals = link_totals(db, send_id=sent)
    assert (1, destination, 3) in totals and all(n == 0 for position, _, n in totals if position != 1)
    assert db.scalars(select(LinkCount)).one().clicks == 3  # one row per link: a total, no visits, nobody


def test_no_open_redirect(client, counting, db, sent):
    ann = next(m for m in outbox(counting) if "ann@" in m["To"])
    own = counted(ann)[0].removeprefix(counting.base_url)
    forged = URLSafeTimedSerializer("another key entirely", salt="mailer.link").dumps([sent, 0])
    attempts = [
        f"/l/{forged}",                                                   # not our signature
        f"/l/{make_token(counting, Purpose.unsubscribe, [sent, 0])}",      # our signature, another purpose
        f"/l/{make_token(counting, Purpose.link, [sent, 999])}",           # past the issue's links
        f"/l/{make_token(counting, Purpose.link, [sent + 1, 0])}",         # no such send
        f"/l/{make_token(counting, Purpose.link, ['https://evil.example', 0])}",
        f"/l/{make_token(counting, Purpose.link, 'https://evil.example')}",
        "/l/https:%2F%2Fevil.example", "/l/", "/l//evil.example",
    ]
    for path in attempts:
        answer = client.get(path)
        assert answer.status_code in (400, 404), path
        assert "evil" not in answer.headers.get("location", "")
    tricked = client.get(f"{own}?url=https://evil.example&next=https://evil.example")
    assert tricked.headers["location"].startswith("https://example.org/")
    assert sum(n for _, _, n in link_totals(db, send_id=sent)) == 1  # only the genuine visit counted


def test_a_draft_s_links_are_not_followed(client, counting, db):
    add_topic(db, name="news")
    draft = create_send(db, settings=counting, issue_path=SAMPLE_ISSUE)
    assert client.get(f"/l/{make_token(counting, Purpose.link, [draft.id, 0])}").status_code == 400


def test_without_the_setting_links_go_straight_to_the_issue(settings, db, person):
    add_topic(db, name="news")
    db.commit()
    person("ann@example.org", topics=["news"])
    send = create_send(db, settings=settings, issue_path=SAMPLE_ISSUE)
    deliver(settings, send.id)
    [message] = outbox(settings)
    assert not any("/l/" in url for url in hrefs(message))
    assert "https://example.org/" in message.get_body(("html",)).get_content()


def test_sends_links_lists_the_totals(client, counting, db, sent, monkeypatch):
    ann = next(m for m in outbox(counting) if "ann@" in m["To"])
    client.get(counted(ann)[1])
    monkeypatch.setattr(console, "_width", 200)
    shown = run_cli(counting, "sends", "links", str(sent))
    assert shown.exit_code == 0, shown.output
    listed = {row[1]: row[2] for row in table_rows(shown.output) if len(row) == 3 and row[0].isdigit()}
    assert listed and sum(map(int, listed.values())) == 1
    assert all(url.startswith("https://example.org/") for url in listed)
