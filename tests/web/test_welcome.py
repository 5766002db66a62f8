"""The welcome email: once per reader after they confirm (however often the link is used, across a runner
restart), in their language, through the delivery engine; nothing without a welcome issue."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.cli.common import console
from mailer.schedule.runner import Runner
from mailer.store import subscribers
from mailer.store.models import Delivery, Send, SendKind, SendStatus
from mailer.web import create_app
from tests.web.helpers import form_action, form_token, link_in, outbox, run_cli, same_origin

ROOT = Path(__file__).resolve().parents[2]
WELCOME = ROOT / "issues" / "welcome.yaml"
ON_ITS_WAY = ("A welcome email is on its way", "Mae e-bost croeso ar ei ffordd")  # the page speaks their language
SUBJECTS = {"en": "Welcome to the network", "cy": "Croeso i'r rhwydwaith",
            "both": "Croeso i'r rhwydwaith / Welcome to the network"}


@pytest.fixture
def welcoming(settings, workdir):
    shutil.copy(WELCOME, workdir / "welcome.yaml")
    return settings.model_copy(update={"welcome_issue": str(workdir / "welcome.yaml"), "languages": ["en", "cy"]})


def pages(settings, engine) -> TestClient:
    return TestClient(create_app(settings, engine=engine), base_url=settings.base_url, follow_redirects=False)


def ask(client, settings, email: str, language: str = "en") -> str:
    """Fill in the subscribe form; the confirmation link from the email."""
    page = client.get("/subscribe").text
    client.post(form_action(page), headers=same_origin(settings),
                data={"csrf": form_token(page), "email": email, "language": language, "consent": "yes"})
    confirmations = [m for m in outbox(settings) if email in m["To"] and "/confirm/" in m.get_body(("plain",)).get_content()]
    return link_in(confirmations[-1], "/confirm/")


def click_confirm(client, settings, link: str, *, times: int = 1):
    """Open the link and press its button (`times` times: a double click posts the same form twice)."""
    token = form_token(client.get(link).text)
    answers = [client.post(link, data={"csrf": token}, headers=same_origin(settings)) for _ in range(times)]
    return answers if times > 1 else answers[0]


def welcomes(settings, email: str | None = None) -> list:
    return [m for m in outbox(settings) if m["Subject"] in SUBJECTS.values() and (email is None or email in m["To"])]


@pytest.mark.parametrize("language", ["cy", "en", "both"])
def test_welcome_once_in_the_reader_s_language_however_often_the_link_is_used(welcoming, engine, language):
    client = pages(welcoming, engine)
    link = ask(client, welcoming, "nia@example.org", language)
    first, again = click_confirm(client, welcoming, link, times=2)
    assert first.status_code == 200 and any(words in first.text for words in ON_ITS_WAY)
    assert again.status_code == 200 and not any(words in again.text for words in ON_ITS_WAY)
    assert client.get(link).status_code == 200  # and opened once more later
    [message] = welcomes(welcoming)
    assert message["Subject"] == SUBJECTS[language] and "nia@example.org" in message["To"]
    assert message["List-Unsubscribe"] and message["Message-ID"]  # an email of the list, from the engine
    with engine.connect() as conn:
        [send] = conn.execute(select(Send.id, Send.kind, Send.status)).all()
        assert (send.kind, send.status) == (SendKind.welcome, SendStatus.sending)  # open for the next reader
        assert conn.execute(select(Delivery.status, Delivery.language)).all() == [("sent", language)]


def test_the_next_reader_joins_the_same_welcome_send(welcoming, engine):
    client = pages(welcoming, engine)
    for email in ("nia@example.org", "owen@example.org"):
        click_confirm(client, welcoming, ask(client, welcoming, email))
    assert len(welcomes(welcoming)) == 2
    with engine.connect() as conn:
        assert conn.execute(select(Send.id)).scalars().all() == [1]


def test_a_runner_restart_delivers_what_was_queued_exactly_once(welcoming, engine, monkeypatch):
    # The page process dies right after its commit, before delivering: the welcome is queued, not sent.
    monkeypatch.setattr("mailer.delivery.welcome.deliver_in_background", lambda *args: None)
    client = pages(welcoming, engine)
    click_confirm(client, welcoming, ask(client, welcoming, "nia@example.org", "cy"))
    assert welcomes(welcoming) == []
    for _ in range(2):  # a runner, then another after a restart
        runner = Runner(welcoming, engine=engine)
        for future in runner.tick():
            future.result(timeout=120)
        runner.close()
    [message] = welcomes(welcoming)
    assert message["Subject"] == SUBJECTS["cy"]


def test_a_reader_who_comes_back_is_not_welcomed_twice(welcoming, engine, db):
    client = pages(welcoming, engine)
    click_confirm(client, welcoming, ask(client, welcoming, "nia@example.org"))
    nia = subscribers.get_by_email(db, email="nia@example.org")
    subscribers.unsubscribe(db, subscriber_id=nia.id, channel="web")
    db.commit()
    ask(client, welcoming, "nia@example.org")  # held: a request soon after leaving must be made twice
    comeback = click_confirm(client, welcoming, ask(client, welcoming, "nia@example.org"))
    assert "You are subscribed" in comeback.text and not any(words in comeback.text for words in ON_ITS_WAY)
    assert len(welcomes(welcoming)) == 1


def test_an_edited_welcome_is_a_new_send_and_the_old_one_finishes(welcoming, engine):
    client = pages(welcoming, engine)
    click_confirm(client, welcoming, ask(client, welcoming, "nia@example.org"))
    path = Path(welcoming.welcome_issue)
    path.write_text(path.read_text(encoding="utf-8").replace("Welcome to the network", "Welcome aboard"),
                    encoding="utf-8")
    later = time.time() + 5  # after the first welcome send was made, on the tests' clock (maybe moved ahead)
    os.utime(path, (later, later))
    click_confirm(client, welcoming, ask(client, welcoming, "owen@example.org"))
    assert [m["Subject"] for m in outbox(welcoming) if "Welcome" in m["Subject"]] == [
        "Welcome to the network", "Welcome aboard"]
    with engine.connect() as conn:
        sends = conn.execute(select(Send.id, Send.status, Send.note).order_by(Send.id)).all()
    assert [(s.id, s.status) for s in sends] == [(1, "finished"), (2, "sending")]
    assert sends[0].note == "replaced by welcome send 2"


def test_nothing_is_sent_without_a_welcome_issue(settings, engine):
    client = pages(settings, engine)
    done = click_confirm(client, settings, ask(client, settings, "nia@example.org"))
    assert "You are subscribed" in done.text and not any(words in done.text for words in ON_ITS_WAY)
    assert welcomes(settings) == []
    with engine.connect() as conn:
        assert conn.execute(select(Send.id)).all() == []


def test_a_broken_welcome_file_does_not_stop_anyone_joining(welcoming, engine, db):
    Path(welcoming.welcome_issue).write_text("title: [unclosed\n", encoding="utf-8")
    client = pages(welcoming, engine)
    done = click_confirm(client, welcoming, ask(client, welcoming, "nia@example.org"))
    assert "You are subscribed" in done.text
    assert subscribers.get_by_email(db, email="nia@example.org").status == "active"
    assert welcomes(welcoming) == []


def test_subscribers_add_welcome_and_sends_list(welcoming, engine, monkeypatch):
    monkeypatch.setattr(console, "_width", 200)
    added = run_cli(welcoming, "subscribers", "add", "nia@example.org", "--language", "cy", "--welcome")
    assert added.exit_code == 0, added.output
    assert "Welcome email: send 1: sending; 1 sent" in added.output
    [message] = welcomes(welcoming)
    assert message["Subject"] == SUBJECTS["cy"]
    listed = run_cli(welcoming, "sends", "list")
    assert "Welcome to the network" in listed.output and "sending" in listed.output
    refused = run_cli(welcoming.model_copy(update={"welcome_issue": ""}), "subscribers", "add", "owen@example.org",
                  "--welcome")
    assert refused.exit_code == 1 and "no welcome email is set" in refused.output
    unusable = welcoming.model_copy(update={"smtp_host": "127.0.0.1", "base_url": "http://127.0.0.1:8000"})
    insecure = run_cli(unusable, "subscribers", "add", "owen@example.org", "--welcome")
    assert insecure.exit_code == 1 and "--allow-insecure-links" in insecure.output  # a welcome is a send
    assert "owen" not in run_cli(welcoming, "subscribers", "list").output


def test_welcome_show_and_test(welcoming, engine, monkeypatch):
    monkeypatch.setattr(console, "_width", 200)
    shown = run_cli(welcoming, "welcome", "show", "--language", "cy")
    assert shown.exit_code == 0, shown.output
    assert "valid; variants: en, cy, both" in shown.output and "No reader has been welcomed yet" in shown.output
    assert "Diolch am ymuno" in shown.output and "Thank you for joining" not in shown.output
    assert "Annwyl Siân Roberts," in shown.output and "__MAILER_" not in shown.output  # as a reader gets it
    tested = run_cli(welcoming, "welcome", "test", "you@example.org", "--language", "cy")
    assert tested.exit_code == 0, tested.output
    [copy] = outbox(welcoming)
    assert copy["Subject"] == "[TEST] Croeso i'r rhwydwaith" and copy["To"] == "you@example.org"
    with engine.connect() as conn:
        assert conn.execute(select(Send.id)).all() == []  # a test copy records nothing
    unset = run_cli(welcoming.model_copy(update={"welcome_issue": ""}), "welcome", "show")
    assert unset.exit_code == 1 and "no welcome email is set" in unset.output
