"""/archive: each issue once, its web version without personal links, and an Atom feed per language."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.delivery import sends
from mailer.store.models import Send, SendStatus
from mailer.store.topics import add_topic
from tests.delivery.helpers import env_for

ROOT = Path(__file__).resolve().parents[2]
ATOM = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"languages": ["en", "cy"]})


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


def test_list_shows_finished_sends_newest_first_dated_by_the_issue(client, issues):
    page = client.get("/archive")
    assert page.status_code == 200
    december, november = issues[1], issues[0]
    assert page.text.index(f'href="/archive/{december.id}?lang=en"') < page.text.index(f'href="/archive/{november.id}?lang=en"')
    assert f"/archive/{issues[2].id}" not in page.text and f"/archive/{issues[3].id}" not in page.text
    # the issues' own `date:` (2026-12-01, 2026-11-02), not the days they were sent (1 Dec, 3 Nov)
    assert "1 December 2026" in page.text and "2 November 2026" in page.text and "3 November" not in page.text
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
    assert links == [f"{settings.base_url}/archive/{issues[1].id}?lang=en", f"{settings.base_url}/archive/{issues[0].id}?lang=en"]
    assert feed.find(f"{ATOM}title").text == settings.list_name
    assert feed.get(XML_LANG) == "en"
    assert [entry.find(f"{ATOM}updated").text[:10] for entry in entries] == ["2026-12-01", "2026-11-02"]
    assert entries[1].find(f"{ATOM}summary").text.startswith("The First Minister answers")


def test_empty_archive_and_feed(client):
    assert "No issues have been sent yet." in client.get("/archive").text
    feed = ET.fromstring(client.get("/archive/feed.atom").content)
    assert feed.findall(f"{ATOM}entry") == []


def test_shared_caches_keep_each_language_of_a_page_apart(client, issues):
    """Without `?lang=` the page's language comes from Accept-Language: a cache must key on it."""
    for path in ("/archive", f"/archive/{issues[1].id}"):
        welsh = client.get(path, headers={"accept-language": "cy"})
        assert welsh.headers["cache-control"].startswith("public")
        assert "accept-language" in welsh.headers["vary"].lower(), path


def test_a_send_row_is_what_is_shown(client, db, issues):
    """The frozen content is shown, not the issue file as it is now."""
    send = db.get(Send, issues[0].id)
    assert send is not None and b"All together" in send.content


def _finish(db, send: Send, when: datetime) -> Send:
    send.status, send.started_at, send.finished_at = SendStatus.finished, when, when
    db.add(send)
    db.commit()
    return send


def test_an_issue_sent_twice_is_listed_once_by_its_newest_send(client, settings, db, issues):
    """Issue 11, section 1: a second send of the same issue listed it twice, dated by the send."""
    again = _finish(db, sends.create_send(db, settings=settings, issue_path=ROOT / "issues" / "2026-11-open-letter.yaml"),
                    datetime(2026, 12, 5, 9, 0))
    page = client.get("/archive").text
    assert page.count("All together: an open letter") == 1
    assert f'href="/archive/{again.id}?lang=en"' in page and f'href="/archive/{issues[0].id}?' not in page
    assert "2 November 2026" in page and "5 December" not in page
    assert page.index("A co-production network for Wales") < page.index("All together")  # by issue date

    feed = ET.fromstring(client.get("/archive/feed.atom").content)
    entries = feed.findall(f"{ATOM}entry")
    assert [entry.find(f"{ATOM}title").text for entry in entries].count("All together: an open letter, and a reply") == 1
    # the entry's id names the issue, not the send: a feed reader sees the same entry, not a new one
    ids = [entry.find(f"{ATOM}id").text for entry in entries]
    assert ids == ["tag:news.example.org,2026-12-01:2026-12-network-launch/en", "tag:news.example.org,2026-11-02:2026-11-open-letter/en"]
    # the earlier send's own link, in the emails it sent, still works
    assert client.get(f"/archive/{issues[0].id}").status_code == 200


@pytest.mark.parametrize("status", [SendStatus.cancelled, SendStatus.failed])
def test_cancelled_and_failed_sends_leave_the_archive(client, db, issues, status):
    """Issue 13, finding 9: a send cancelled after it started stayed public at /archive/ID."""
    started, finished = issues[3], issues[1]  # one being sent, one sent
    assert client.get(f"/archive/{started.id}").status_code == 200
    for send in (started, finished):
        db.get(Send, send.id).status = status
    db.commit()
    assert client.get(f"/archive/{started.id}").status_code == 404
    assert client.get(f"/archive/{finished.id}").status_code == 404
    assert f"/archive/{finished.id}" not in client.get("/archive").text
    assert f"/archive/{finished.id}" not in client.get("/archive/feed.atom").text


def _cli(settings, *args: str):
    cli_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env_for(settings))
    finally:
        cli_settings.cache_clear()


def test_an_editor_withdraws_an_issue_and_puts_it_back(client, settings, db, issues):
    december = issues[1]
    again = _finish(db, sends.create_send(db, settings=settings, issue_path=ROOT / "issues" / "2026-12-network-launch.yaml"),
                    datetime(2026, 12, 2, 9, 0))
    withdrawn = _cli(settings, "sends", "unpublish", str(december.id))
    assert withdrawn.exit_code == 0, withdrawn.output
    assert "2026-12-network-launch" in withdrawn.output and "withdrawn" in withdrawn.output
    for send in (december, again):  # every send of the issue, so no older one takes its place
        assert client.get(f"/archive/{send.id}").status_code == 404
    assert "A co-production network" not in client.get("/archive").text
    assert "A co-production network" not in client.get("/archive/feed.atom").text
    assert "All together" in client.get("/archive").text

    back = _cli(settings, "sends", "publish", str(december.id))
    assert back.exit_code == 0, back.output
    assert client.get(f"/archive/{again.id}").status_code == 200
    assert "A co-production network" in client.get("/archive").text

    unknown = _cli(settings, "sends", "unpublish", "999")
    assert unknown.exit_code == 1 and "no send with id 999" in unknown.output


def test_welsh_archive_lists_a_bilingual_issue_under_its_welsh_title(client, issues):
    page = client.get("/archive?lang=cy").text
    december, november = issues[1], issues[0]
    assert f'<a href="/archive/{december.id}?lang=cy">Rhwydwaith cydgynhyrchu i Gymru</a>' in page
    assert "A co-production network" not in page
    # an English-only issue keeps its English title, marked as English for screen readers
    assert f'<a href="/archive/{november.id}?lang=cy" lang="en" hreflang="en">All together' in page
    assert "Rhwydwaith cydgynhyrchu i Gymru" in client.get(f"/archive/{december.id}?lang=cy").text


def test_welsh_feed_beside_the_english_one(client, settings, issues):
    settings_page = client.get("/archive?lang=cy").text
    assert 'href="/archive/feed.cy.atom" hreflang="cy"' in settings_page
    response = client.get("/archive/feed.cy.atom")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    assert feed.get(XML_LANG) == "cy"
    (entry,) = feed.findall(f"{ATOM}entry")  # only the issue written in Welsh
    assert entry.find(f"{ATOM}title").text == "Rhwydwaith cydgynhyrchu i Gymru"
    assert entry.find(f"{ATOM}link").get("href") == f"{settings.base_url}/archive/{issues[1].id}?lang=cy"
    assert entry.find(f"{ATOM}summary").text.startswith("Mae'r rhwydwaith wedi'i ariannu")
    english = ET.fromstring(client.get("/archive/feed.en.atom").content)
    assert english.get(XML_LANG) == "en" and len(english.findall(f"{ATOM}entry")) == 2
