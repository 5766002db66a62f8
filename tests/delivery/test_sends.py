"""Sends made from a real issue file: frozen content, scheduling, refresh, and the messages as received."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest
from sqlmodel import select

from mailer.content import Rendered
from mailer.delivery.dkim import generate_key
from mailer.delivery.engine import deliver
from mailer.delivery.sends import audience_size, create_send, refresh_content, rendered_variants, start
from mailer.errors import IssueError, SendError
from mailer.store.db import new_session
from mailer.store.models import Delivery, SendStatus, utcnow
from mailer.tokens import unsubscribe_url
from tests.delivery.helpers import SAMPLE_ISSUE, deliveries


def test_a_send_freezes_every_variant(settings, engine, news) -> None:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        send = create_send(session, settings=settings, issue_path=SAMPLE_ISSUE)
        assert send.status == SendStatus.draft and send.topics == "news" and send.title.startswith("A co-production")
        frozen = json.loads(send.content)
        assert list(frozen) == ["en", "cy", "both"]
        assert all(Rendered.from_dict(data).language == variant for variant, data in frozen.items())
        assert rendered_variants(send)["cy"].subject.startswith("Rhwydwaith")
        assert not session.exec(select(Delivery)).all()  # the audience is taken when it starts
        assert audience_size(session, topics=["news"]) == 3


def test_scheduled_send_refresh_and_start(settings, engine, news, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    issue = workdir / "issue.yaml"
    issue.write_text(SAMPLE_ISSUE.read_text(encoding="utf-8"), encoding="utf-8")
    with new_session(engine) as session:
        send = create_send(session, settings=settings, issue_path=issue, scheduled_at=utcnow() + timedelta(days=1))
        assert send.status == SendStatus.scheduled
        before = send.content_hash
        issue.write_text(issue.read_text(encoding="utf-8").replace("A co-production network for Wales",
                                                                   "The network is launched"), encoding="utf-8")
        refreshed = refresh_content(session, settings=settings, send_id=send.id)
        assert refreshed.content_hash != before and refreshed.title == "The network is launched"
        start(session, send_id=send.id)
        assert len(session.exec(select(Delivery)).all()) == 3
        with pytest.raises(SendError, match="has started"):
            refresh_content(session, settings=settings, send_id=send.id)


def test_bad_requests_are_refused_clearly(settings, engine, news, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        with pytest.raises(SendError, match="no topic named events"):
            create_send(session, settings=settings, issue_path=SAMPLE_ISSUE, topics=["events"])
        with pytest.raises(SendError, match="unknown language de"):
            create_send(session, settings=settings, issue_path=SAMPLE_ISSUE, languages=["de"])
        broken = workdir / "broken.yaml"
        broken.write_text("title: x\n", encoding="utf-8")
        with pytest.raises(IssueError):
            create_send(session, settings=settings, issue_path=broken)


def test_messages_as_received_parse_and_verify(smtp_settings, smtp_server, engine, news, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    private, _, record = generate_key(workdir / "dkim", "news")
    settings = smtp_settings.model_copy(update={"dkim_selector": "news", "dkim_private_key": str(private),
                                                "reply_to": "editor@example.org"})
    with new_session(engine) as session:
        send = create_send(session, settings=settings, issue_path=SAMPLE_ISSUE)
    assert deliver(settings, send.id).status == "finished"

    rows = deliveries(engine, send.id)
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == sorted(rows)
    for received in smtp_server.messages:
        message, row = received.message, rows[received.rcpt_tos[0]]
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record.encode())
        assert message["From"] == "Network News <news@example.org>"
        assert [a.addr_spec for a in message["To"].addresses] == [row.email]
        assert message["Reply-To"] == "editor@example.org"
        assert message["Message-ID"] == row.message_id and message["Message-ID"].endswith("@example.org>")
        assert abs(parsedate_to_datetime(message["Date"]).replace(tzinfo=None) - utcnow()) < timedelta(minutes=1)
        assert message["List-Id"] == "Newsletter <news.example.org>"
        assert message["List-Unsubscribe"].startswith(f"<{unsubscribe_url(settings, row.subscriber_id, send.id)}>, <mailto:")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["MIME-Version"] == "1.0" and message.get_content_type() == "multipart/alternative"
        assert received.mail_from.startswith(f"bounces+{row.id}-")
        text, html = message.iter_parts()
        assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
        assert "__MAILER_" not in text.get_content() + html.get_content()
        assert unsubscribe_url(settings, row.subscriber_id, send.id) in html.get_content()
    tom = next(r.message for r in smtp_server.messages if r.rcpt_tos == ["tom@example.com"])
    assert tom["To"].addresses[0].display_name == "Tom \"Tiny\" O'Neill, Jr."
    assert "Tom &quot;Tiny&quot; O&#x27;Neill, Jr." in tom.get_body(("html",)).get_content()
    sian = next(r.message for r in smtp_server.messages if r.rcpt_tos == ["sian@example.com"])
    assert sian["Subject"].startswith("Rhwydwaith") and 'lang="cy"' in sian.get_body(("html",)).get_content()
