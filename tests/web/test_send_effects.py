"""What each issue did: the links of an email carry its send, so leaving, preference changes and bounces
are counted on the issue that caused them, by language (`mailer sends show`)."""

from __future__ import annotations

import mailbox
import re
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailer.bounces import process_mailbox
from mailer.bounces.classify import Classification, Failure
from mailer.bounces.policy import record
from mailer.cli.common import console
from mailer.delivery.effects import send_effects
from mailer.delivery.engine import deliver
from mailer.delivery.sends import create_send
from mailer.store.models import BounceKind, Delivery, Event, EventKind
from mailer.store.topics import add_topic
from mailer.tokens import unsubscribe_url
from tests.delivery.helpers import SAMPLE_ISSUE
from tests.web.helpers import form_token, link_in, outbox, run_cli, same_origin, table_rows

GMAIL_HEADERS = {"content-type": "application/x-www-form-urlencoded", "user-agent": "Mozilla/5.0 (Google-Safety)"}


@pytest.fixture
def sent(settings, db, person):
    """The sample issue sent (to the outbox) to three readers of `news`, one per language; its send id."""
    add_topic(db, name="news")
    db.commit()
    for email, language in [("ann@example.org", "en"), ("bryn@example.org", "cy"), ("cadi@example.org", "both")]:
        person(email, language=language, topics=["news"])
    send = create_send(db, settings=settings, issue_path=SAMPLE_ISSUE)
    deliver(settings, send.id)
    return send.id


def message_to(settings, address: str) -> EmailMessage:
    return next(message for message in outbox(settings) if address in message["To"])


def one_click_url(message: EmailMessage) -> str:
    return re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]


def test_a_one_click_unsubscribe_is_counted_on_its_send(client, settings, db, sent):
    response = client.post(one_click_url(message_to(settings, "ann@example.org")),
                           content=b"List-Unsubscribe=One-Click", headers=GMAIL_HEADERS)
    assert response.status_code == 200
    event = db.scalars(select(Event).where(Event.kind == EventKind.unsubscribed)).one()
    assert (event.channel, event.send_id) == ("one-click", sent)
    effects = send_effects(db, send_id=sent)
    assert effects.counts["left: one-click"] == {"en": 1}
    assert effects.counts["delivered"] == {"en": 1, "cy": 1, "both": 1}


def test_the_page_and_the_preferences_link_are_counted_on_their_send_by_language(client, settings, db, sent):
    unsubscribe = link_in(message_to(settings, "cadi@example.org"), "/u/")
    page = client.get(unsubscribe)
    client.post(unsubscribe, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    preferences = link_in(message_to(settings, "bryn@example.org"), "/p/")
    page = client.get(preferences)
    saved = client.post(preferences, headers=same_origin(settings),
                        data={"csrf": form_token(page.text), "name": "Bryn", "email": "bryn@example.org"})
    assert saved.status_code == 200
    # The preferences page's own unsubscribe link goes on carrying the send.
    onward = re.search(r'href="(https://news\.example\.org/u/[^"?]+)', saved.text).group(1)  # type: ignore[union-attr]
    client.post(onward, content=b"List-Unsubscribe=One-Click", headers=GMAIL_HEADERS)

    effects = send_effects(db, send_id=sent)
    assert effects.counts["left: page"] == {"both": 1}
    assert effects.counts["preferences changed"] == {"cy": 1}
    assert effects.counts["left: one-click"] == {"cy": 1}
    assert effects.total("left: by email") == 0


def test_links_made_outside_a_send_and_old_links_count_on_no_issue(client, settings, db, sent, person):
    ann = db.scalars(select(Delivery).where(Delivery.email == "ann@example.org")).one()
    client.post(unsubscribe_url(settings, ann.subscriber_id), content=b"List-Unsubscribe=One-Click",
                headers=GMAIL_HEADERS)  # a link as made before sends were carried: the id alone
    event = db.scalars(select(Event).where(Event.kind == EventKind.unsubscribed)).one()
    assert event.send_id is None
    assert send_effects(db, send_id=sent).total("left: one-click") == 0


def test_bounces_and_complaints_are_split_hard_soft_and_by_language(settings, db, sent):
    by_address = {d.email: d for d in db.scalars(select(Delivery).where(Delivery.send_id == sent))}
    for n, (address, kind) in enumerate([("ann@example.org", BounceKind.permanent),
                                         ("bryn@example.org", BounceKind.temporary),
                                         ("cadi@example.org", BounceKind.complaint)]):
        record(db, settings, Classification(f"<report{n}@mx.example>", (Failure(address, kind, "550 5.1.1"),),
                                            (by_address[address].id,)))
    db.commit()
    effects = send_effects(db, send_id=sent)
    assert effects.counts["bounced: hard"] == {"en": 1}
    assert effects.counts["bounced: soft"] == {"cy": 1}
    assert effects.counts["complaints"] == {"both": 1}


def test_sends_show_prints_what_the_issue_did(client, settings, db, sent, monkeypatch):
    client.post(one_click_url(message_to(settings, "bryn@example.org")), content=b"List-Unsubscribe=One-Click",
                headers=GMAIL_HEADERS)
    monkeypatch.setattr(console, "_width", 200)
    shown = run_cli(settings, "sends", "show", str(sent))
    assert shown.exit_code == 0, shown.output
    rows = {row[0]: row[1:] for row in table_rows(shown.output) if len(row) > 3}
    assert rows["what this issue did"] == ["both", "cy", "en", "all"]
    assert rows["delivered"] == ["1", "1", "1", "3"]
    assert rows["left: one-click"] == ["0", "1", "0", "1"]
    assert rows["bounced: hard"] == ["0", "0", "0", "0"]


def test_an_unsubscribe_by_email_is_counted_on_its_send(settings, db, sent, workdir):
    mailto = re.search(r"<mailto:([^?>]+)", message_to(settings, "cadi@example.org")["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    box = mailbox.Maildir(workdir / "Maildir", create=True)
    box.add(f"From: Cadi <cadi@example.org>\nTo: <{mailto}>\nSubject: unsubscribe\nMessage-ID: <u1@example.org>\n"
            f"Date: Wed, 02 Dec 2026 09:00:00 +0000\nContent-Type: text/plain\n\nunsubscribe\n".encode())
    box.close()
    assert process_mailbox(settings, str(workdir / "Maildir")).unsubscribed == 1
    assert send_effects(db, send_id=sent).counts["left: by email"] == {"both": 1}
