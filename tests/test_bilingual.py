"""Issue 8 end to end: each subscriber gets the issue in their language.

The bilingual sample issue is rendered for real, sent through the delivery
engine to a real SMTP server on 127.0.0.1 and read back with the `email`
package; the links in what arrived are then opened in the real web app. The
parts' own tests (tests/content, tests/delivery, tests/web) cover the details;
these check that the parts agree with each other.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from mailer import i18n
from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.engine import deliver
from mailer.delivery.report import SendReport
from mailer.delivery.sends import create_send, get_send, rendered_variants
from mailer.errors import IssueError
from mailer.store.db import new_session
from mailer.store.models import Topic
from mailer.store.subscribers import add_subscriber
from mailer.web import create_app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "issues" / "2026-12-network-launch.yaml"
WELSH_LETTERS = "âêîôûŵŷï"
# A Welsh subject with every one of them ("I was at the festival with the choir: team, stars and stories in Tŷ Hywel").
WELSH_TITLE = "Bûm yn yr ŵyl â'r côr: tîm, sêr a storïau yn Nhŷ Hywel"
READERS = {  # language -> (address, name); the names carry the letters too
    "en": ("tom@example.com", "Tom Jones"),
    "cy": ("sian@example.com", "Siân Ŵyn Prŷs"),
    "both": ("dwy@example.com", "Môn Îfan ap Êl Ûna Ïolo"),
}
TITLES = {"en": "A co-production network for Wales", "cy": "Rhwydwaith cydgynhyrchu i Gymru"}
SCROLL_NOTES = {"en": "Scroll down for the English version.", "cy": "Sgroliwch i lawr am y fersiwn Gymraeg."}
_BLOCK = re.compile(r'<div class="mailer-lang-(en|cy)" lang="(en|cy)"')


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server) -> Settings:  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                       "smtp_security": "none", "smtp_timeout": 5.0, "languages": ["en", "cy"]})


@pytest.fixture
def readers(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One active subscriber to "news" per language choice; language -> address."""
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        for language, (email, name) in READERS.items():
            add_subscriber(session, email=email, name=name, language=language, topics=["news"])
        session.commit()
    return {language: email for language, (email, _) in READERS.items()}


@pytest.fixture
def send_issue(engine, smtp_server) -> Callable[..., tuple[int, SendReport, dict[str, EmailMessage]]]:  # type: ignore[no-untyped-def]
    """Create a send of an issue and deliver it: (send id, report, message received per address)."""

    def send(settings: Settings, issue: Path = SAMPLE) -> tuple[int, SendReport, dict[str, EmailMessage]]:
        with new_session(engine) as session:
            send_id = create_send(session, settings=settings, issue_path=issue).id
        report = deliver(settings, send_id)
        assert report.status == "finished", report
        return send_id, report, {received.rcpt_tos[0]: received.message for received in smtp_server.messages}

    return send


@pytest.fixture
def welsh_issue(tmp_path: Path) -> Path:
    """The sample issue with a Welsh title (so subject) holding every accented Welsh letter."""
    path = tmp_path / "issue.yaml"
    source = SAMPLE.read_text(encoding="utf-8")
    path.write_text(source.replace(f'cy: "{TITLES["cy"]}"', f'cy: "{WELSH_TITLE}"', 1), encoding="utf-8")
    assert WELSH_TITLE in path.read_text(encoding="utf-8")
    return path


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML with entities decoded) of a received message."""
    text, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html_part is not None
    assert text.get_content_charset() == html_part.get_content_charset() == "utf-8"
    return text.get_content(), html.unescape(html_part.get_content())


def blocks(page: str) -> list[tuple[str, str]]:
    """The language blocks of a rendered email, in order: (lang attribute, the block's HTML)."""
    pieces = _BLOCK.split(page)
    found = []
    for index in range(1, len(pieces), 3):
        css_class, lang, body = pieces[index:index + 3]
        assert css_class == lang, "a block's lang attribute must name its own language"
        found.append((lang, body))
    return found


def root_lang(page: str) -> str:
    return re.search(r'<html lang="(\w+)"', page).group(1)  # type: ignore[union-attr]


# --- 1. the right variant at the SMTP server ------------------------------------------------------


def test_each_subscriber_gets_their_language(smtp_settings, readers, send_issue) -> None:  # type: ignore[no-untyped-def]
    _, _, received = send_issue(smtp_settings)
    assert sorted(received) == sorted(readers.values())

    english = received[readers["en"]]
    assert english["Subject"] == TITLES["en"]
    text, page = parts(english)
    assert root_lang(page) == "en" and [lang for lang, _ in blocks(page)] == ["en"]
    assert "The network is funded, and it exists because of you" in page  # the preheader
    for words in ("Dear Tom Jones,", "1 December 2026", "When: Thursday 21 January 2027, 10:00–15:30",
                  "Unsubscribe:\r\nhttps://", "View in browser:\r\nhttps://"):
        assert words in text, words
    assert "Annwyl" not in text + page and TITLES["cy"] not in text + page

    welsh = received[readers["cy"]]
    assert welsh["Subject"] == TITLES["cy"]
    text, page = parts(welsh)
    assert root_lang(page) == "cy" and [lang for lang, _ in blocks(page)] == ["cy"]
    assert "Mae'r rhwydwaith wedi'i ariannu" in page  # the preheader
    for words in ("Annwyl Siân Ŵyn Prŷs,", "1 Rhagfyr 2026", "Pryd: Dydd Iau 21 Ionawr 2027, 10:00–15:30",
                  "Ble: Tŷ Hywel, Bae Caerdydd", "Dad-danysgrifio:\r\nhttps://", "Gweld yn eich porwr:\r\nhttps://"):
        assert words in text, words
    assert "Dear " not in text + page and "Unsubscribe" not in text + page and TITLES["en"] not in text + page


def test_a_bilingual_email_carries_both_welsh_first_by_default(smtp_settings, readers, send_issue) -> None:  # type: ignore[no-untyped-def]
    assert smtp_settings.bilingual_first == "cy"
    _, _, received = send_issue(smtp_settings)
    message = received[readers["both"]]
    assert message["Subject"] == f"{TITLES['cy']} / {TITLES['en']}"
    text, page = parts(message)

    assert root_lang(page) == "cy"
    (note_lang, note), (first, welsh), (second, english) = blocks(page)
    assert (note_lang, first, second) == ("en", "cy", "en")  # the note is in the language it points to
    assert SCROLL_NOTES["en"] in note
    assert all(words in welsh for words in (TITLES["cy"], "Annwyl Môn", "1 Rhagfyr 2026", "Dad-danysgrifio"))
    assert all(words in english for words in (TITLES["en"], "Dear Môn", "1 December 2026", "Unsubscribe"))
    assert "Dear " not in welsh and "Unsubscribe" not in welsh
    assert "Annwyl" not in english and "Dad-danysgrifio" not in english

    assert text.startswith(SCROLL_NOTES["en"])
    assert text.index("Annwyl Môn") < text.index("Dad-danysgrifio:") < text.index("Dear Môn") < text.index("Unsubscribe:")


def test_which_language_comes_first_is_a_setting(smtp_settings, readers, send_issue) -> None:  # type: ignore[no-untyped-def]
    _, _, received = send_issue(smtp_settings.model_copy(update={"bilingual_first": "en"}))
    message = received[readers["both"]]
    assert message["Subject"] == f"{TITLES['en']} / {TITLES['cy']}"
    text, page = parts(message)
    assert root_lang(page) == "en"
    assert [lang for lang, _ in blocks(page)] == ["cy", "en", "cy"]
    assert SCROLL_NOTES["cy"] in blocks(page)[0][1]
    assert text.startswith(SCROLL_NOTES["cy"]) and text.index("Dear Môn") < text.index("Annwyl Môn")
    assert received[readers["cy"]]["Subject"] == TITLES["cy"]  # one-language readers are not affected


def test_a_reader_without_a_name_is_greeted_in_each_language(smtp_settings, readers, send_issue, engine) -> None:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        add_subscriber(session, email="anon@example.com", language="both", topics=["news"])
        session.commit()
    send_id, _, received = send_issue(smtp_settings)
    text, page = parts(received["anon@example.com"])
    for part in (text, page):
        assert "Annwyl ddarllenydd," in part and "Dear reader," in part and "Dear ddarllenydd" not in part
    assert "You subscribed to Newsletter with the address anon@example.com." in text + page

    # The web version names nobody: the same greetings, and no "...with the address ." in the footer.
    with TestClient(create_app(smtp_settings, engine=engine), base_url=smtp_settings.base_url) as client:
        for language, greetings in (("both", ("Annwyl ddarllenydd,", "Dear reader,")), ("en", ("Dear reader,",)),
                                    ("cy", ("Annwyl ddarllenydd,",))):
            web_version = html.unescape(client.get(f"/archive/{send_id}?lang={language}").text)
            assert all(greeting in web_version for greeting in greetings), language
            assert "with the address" not in web_version and "gyda'r cyfeiriad" not in web_version, language


# --- 2. a missing translation is caught -------------------------------------------------------------


@pytest.fixture
def mailer_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Run `mailer ...` as a user would, with the test's settings in the environment."""
    monkeypatch.setattr(console, "_width", 200)
    env = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": settings.database_url,
           "MAILER_TEMPLATES_DIR": settings.templates_dir, "MAILER_LANGUAGES": '["en", "cy"]'}

    def run(*args: str) -> Result:
        cli_settings.cache_clear()
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    yield run
    cli_settings.cache_clear()


def test_a_missing_welsh_text_is_caught_with_file_and_line(mailer_cli, settings, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    welsh = lines.index('      cy: "Beth sy\'n digwydd nesaf"\n')
    del lines[welsh]  # the English heading, left alone, is on the line before: line `welsh` counting from 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("".join(lines), encoding="utf-8")

    validated = mailer_cli("issue", "validate", str(broken))
    assert validated.exit_code == 1
    assert f"{broken}:{welsh}:7: sections[1].heading: missing the Welsh text (cy:)" in validated.output
    assert mailer_cli("issue", "validate", str(SAMPLE)).output.strip() == f"{SAMPLE}: ok"
    with new_session(engine) as session, pytest.raises(IssueError):  # nothing half-Welsh can be sent
        create_send(session, settings=settings, issue_path=broken)

    # lint lists a field whose "Welsh" is the English text unchanged
    untranslated = tmp_path / "untranslated.yaml"
    untranslated.write_text(SAMPLE.read_text(encoding="utf-8").replace('cy: "Archebu lle"', 'cy: "Book a place"'),
                            encoding="utf-8")
    line = next(number for number, text in enumerate(untranslated.read_text(encoding="utf-8").splitlines(), 1)
                if 'cy: "Book a place"' in text)
    linted = mailer_cli("issue", "lint", str(untranslated))
    assert linted.exit_code == 1
    assert f"{untranslated}:{line}:" in linted.output
    assert "sections[3].button.label.cy: untranslated" in linted.output


# --- 3. Welsh letters survive every step ------------------------------------------------------------


def test_welsh_letters_survive_every_step(smtp_settings, readers, send_issue, welsh_issue, smtp_server, engine) -> None:  # type: ignore[no-untyped-def]
    assert set(WELSH_LETTERS) <= set(WELSH_TITLE.lower())
    assert set(WELSH_LETTERS) <= set((READERS["cy"][1] + READERS["both"][1]).lower())
    send_id, _, received = send_issue(smtp_settings, welsh_issue)

    with new_session(engine) as session:  # frozen in the database
        assert rendered_variants(get_send(session, send_id=send_id))["cy"].subject == WELSH_TITLE

    raw = {received.rcpt_tos[0]: received.data for received in smtp_server.messages}
    for language, subject in (("cy", WELSH_TITLE), ("both", f"{WELSH_TITLE} / {TITLES['en']}")):
        email, name = READERS[language]
        data = raw[email]
        assert data.isascii()  # 7-bit on the wire: RFC 2047 in the headers, base64 in the bodies
        headers = message_from_bytes(data, policy=email_policy.compat32)  # the headers as sent, undecoded
        for field, value in (("Subject", subject), ("To", f"{name} <{email}>")):
            assert "=?utf-8?" in headers[field].lower(), field
            assert str(make_header(decode_header(headers[field]))) == value, field

        message = received[email]  # decoded by the modern email API too
        assert message["Subject"] == subject
        [to] = message["To"].addresses
        assert (to.display_name, to.addr_spec) == (name, email)

        text, page = parts(message)
        for words in (WELSH_TITLE, f"Annwyl {name},", "Gŵyl Dewi", "storïau", "Tŷ Hywel", "Tîm Cydgynhyrchu",
                      "ymwneud â phob un"):
            assert words in text, words
            assert words in page, words
        assert f"<title>{WELSH_TITLE}</title>" in page  # Welsh first; a <title> cannot mark a second language

    with TestClient(create_app(smtp_settings, engine=engine), base_url=smtp_settings.base_url) as client:
        web_version = client.get(f"/archive/{send_id}?lang=cy")
        assert web_version.status_code == 200 and WELSH_TITLE in html.unescape(web_version.text)


# --- 4. the report counts per language ---------------------------------------------------------------


def test_the_report_counts_per_language(smtp_settings, readers, send_issue, smtp_server, engine, mailer_cli) -> None:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        for email, language in (("ann@example.com", "en"), ("bob@example.com", "en"), ("gone@example.com", "cy")):
            add_subscriber(session, email=email, language=language, topics=["news"])
        session.commit()
    smtp_server.rules["gone@example.com"] = "550 5.1.1 No such user"

    send_id, report, _ = send_issue(smtp_settings)
    assert report.by_language == {"en": {"sent": 3}, "cy": {"sent": 1, "failed": 1}, "both": {"sent": 1}}

    shown = mailer_cli("sends", "show", str(send_id))
    assert shown.exit_code == 0, shown.output
    rows = {cells[0]: cells[1:] for line in shown.output.splitlines()
            if len(cells := re.split(r"\s{2,}", line.strip())) > 2}  # columns are two or more spaces apart
    columns = rows["language"]
    for language, counts in (("en", {"sent": 3, "total": 3}), ("cy", {"sent": 1, "failed": 1, "total": 2}),
                             ("both", {"sent": 1, "total": 1}), ("all", {"sent": 5, "failed": 1, "total": 6})):
        assert {column: int(n) for column, n in zip(columns, rows[language], strict=True) if n != "0"} == counts, language


# --- 5. catalogues --------------------------------------------------------------------------------


def test_no_untranslated_message_in_the_welsh_catalogues() -> None:
    """Every entry of every Welsh .po file (tests/content and tests/web check that every text *used* has one)."""
    files = i18n.catalogue_files("cy")
    assert {path.name for path in files} >= {"email.po", "web.po"}
    translations: dict[str, dict[str, str]] = {}
    for path in files:
        with path.open("rb") as handle:
            catalogue = read_po(handle, locale="cy")
        for message in catalogue:
            if not message.id:
                continue
            where = f"{path.name}: {message.id!r}"
            assert message.string and not message.fuzzy, f"untranslated: {where}"
            assert sorted(re.findall(r"%\(\w+\)s", message.string)) == sorted(re.findall(r"%\(\w+\)s", message.id)), where
            translations.setdefault(message.id, {})[path.name] = message.string
        assert not list(catalogue.check()), path.name  # Babel's own checks (python-format and the like)
        assert not catalogue.obsolete, path.name
    # The files are merged into one catalogue, so a text in two files must be translated the same in both.
    differing = {message_id: found for message_id, found in translations.items() if len(set(found.values())) > 1}
    assert differing == {}


# --- 6. the pages follow the reader's language, with a switch ---------------------------------------


def _links(block: str) -> dict[str, str]:
    """The links to our own pages in a block of an email: unsubscribe, preferences, web version."""
    found = dict(re.findall(r'href="(https://news\.example\.org/(u|p|archive)/[^"]+)"', block))
    return {kind: url for url, kind in found.items()}


def _page(client: TestClient, url: str) -> tuple[str, str, str]:
    """(lang of the page, its switch link, what the switch link opens)."""
    response = client.get(url)
    assert response.status_code == 200, url
    switch = html.unescape(re.search(r'<a class="switch" href="([^"]+)"', response.text).group(1))  # type: ignore[union-attr]
    switched = client.get(switch)
    assert switched.status_code == 200, switch
    return root_lang(response.text), switch, root_lang(switched.text)


def test_pages_opened_from_the_email_follow_its_language(smtp_settings, readers, send_issue, engine) -> None:  # type: ignore[no-untyped-def]
    _, _, received = send_issue(smtp_settings)
    with TestClient(create_app(smtp_settings, engine=engine), base_url=smtp_settings.base_url,
                    follow_redirects=False) as client:
        for language, email in readers.items():
            _, page = parts(received[email])
            for block_lang, block in blocks(page):
                links = _links(block)
                if not links:  # the note at the top of a bilingual email
                    continue
                assert set(links) == {"u", "p", "archive"}, (language, block_lang)
                other = "en" if block_lang == "cy" else "cy"
                for kind in ("u", "p"):
                    lang, switch, switched = _page(client, links[kind])
                    assert (lang, switched) == (block_lang, other), (language, block_lang, kind)
                    assert switch == f"{links[kind].removeprefix(smtp_settings.base_url).split('?')[0]}?lang={other}"
                web_version = client.get(links["archive"])
                assert web_version.status_code == 200
                assert root_lang(web_version.text) == block_lang and TITLES[block_lang] in html.unescape(web_version.text)
        # The List-Unsubscribe header carries no language: the page then speaks the subscriber's own,
        # and someone who reads both gets the one that comes first in their emails.
        for language, expected in (("en", "en"), ("cy", "cy"), ("both", smtp_settings.bilingual_first)):
            header = received[readers[language]]["List-Unsubscribe"]
            url = re.search(r"<(https://[^>]+)>", header).group(1)  # type: ignore[union-attr]
            assert _page(client, url)[0] == expected, language
