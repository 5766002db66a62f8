"""/archive: the list of finished sends, each one's web version without personal links, and the Atom feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from mailer.delivery import sends
from mailer.store.models import Send, SendStatus
from mailer.store.topics import add_topic

ROOT = Path(__file__).resolve().parents[2]
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def issues(settings, db):
    """Sends of both sample issues (rendered for real): the first finished in November, the second in December;
    then copies of them: one still a draft, one being sent right now."""
    add_topic(db, name="news")
    db.commit()
    november, december = (sends.create_send(db, settings=settings, issue_path=ROOT / "issues" / name)
                          for name in ("2026-11-open-letter.yaml", "2026-12-network-launch.yaml"))
    for send, finished in ((november, datetime(2026, 11, 3, 9, 30)), (december, datetime(2026, 12, 1, 9, 0))):
        send.status, send.started_at, send.finished_at = SendStatus.finished, finished, finished
    draft = Send(issue_slug=december.issue_slug, title="Not out yet", content=december.content)
    sending = Send(issue_slug=november.issue_slug, title=november.title, content=november.content,
                   status=SendStatus.sending, started_at=datetime(2026, 12, 2, 9, 0))
    db.add_all([november, december, draft, sending])
    db.commit()
    return [november, december, draft, sending]


def test_list_shows_finished_sends_newest_first(client, issues):
    page = client.get("/archive")
    assert page.status_code == 200
    december, november = issues[1], issues[0]
    assert page.text.index(f'href="/archive/{december.id}"') < page.text.index(f'href="/archive/{november.id}"')
    assert f"/archive/{issues[2].id}" not in page.text and f"/archive/{issues[3].id}" not in page.text
    assert "1 December 2026" in page.text and "3 November 2026" in page.text
    assert 'type="application/atom+xml"' in page.text


def test_list_dates_in_welsh(client, issues):
    page = client.get("/archive?lang=cy")
    assert "Rhagfyr 2026" in page.text and "Rhifynnau blaenorol" in page.text


def test_web_version_has_no_personal_placeholders(client, settings, issues):
    page = client.get(f"/archive/{issues[0].id}")
    assert page.status_code == 200
    assert "__MAILER_" not in page.text
    assert f"{settings.base_url}/u/" not in page.text and f"{settings.base_url}/p/" not in page.text
    assert "All together" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"


def test_view_in_browser_works_while_a_send_is_in_progress(client, issues):
    assert client.get(f"/archive/{issues[3].id}").status_code == 200


def test_unsent_or_unknown_issue_is_not_found(client, issues):
    for path in [f"/archive/{issues[2].id}", "/archive/999999", "/archive/0", "/archive/-1", "/archive/abc",
                 "/archive/99999999999999999999999999", "/archive/1.5"]:
        response = client.get(path)
        assert response.status_code == 404 and "Page not found" in response.text, path


def test_atom_feed(client, settings, issues):
    response = client.get("/archive/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    links = [entry.find(f"{ATOM}link").get("href") for entry in entries]
    assert links == [f"{settings.base_url}/archive/{issues[1].id}", f"{settings.base_url}/archive/{issues[0].id}"]
    assert feed.find(f"{ATOM}title").text == settings.list_name
    assert entries[1].find(f"{ATOM}summary").text.startswith("The First Minister answers")


def test_empty_archive_and_feed(client):
    assert "No issues have been sent yet." in client.get("/archive").text
    feed = ET.fromstring(client.get("/archive/feed.atom").content)
    assert feed.findall(f"{ATOM}entry") == []


def test_a_send_row_is_what_is_shown(client, db, issues):
    """The frozen content is shown, not the issue file as it is now."""
    send = db.get(Send, issues[0].id)
    assert send is not None and b"All together" in send.content
