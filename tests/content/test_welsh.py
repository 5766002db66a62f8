"""Welsh on equal terms in the email: the list's name and address in each block's language, the From and
List-Id display names in the reader's language, and a bilingual email's language note that jumps to the other half."""

from __future__ import annotations

from email import message_from_bytes, policy

import lxml.html
import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.content import Personaliser, load_issue, render_issue
from mailer.content.build import sample_values
from mailer.delivery.message import MessageBuilder, Recipient
from mailer.delivery.notices import build_notice
from mailer.delivery.sends import render_variants
from mailer.store.db import make_engine, new_session, upgrade
from mailer.store.topics import add_topic
from tests.content.conftest import SAMPLE_BILINGUAL

NAMES = {"en": "Network News", "cy": "Newyddion y Rhwydwaith"}
SENDERS = {"en": "Co-production Network for Wales", "cy": "Rhwydwaith Cydgynhyrchu Cymru"}
ADDRESSES = {"en": "1 Example Street, Cardiff", "cy": "1 Stryd Enghraifft, Caerdydd"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"languages": ["en", "cy"], "list_name": NAMES, "postal_address": ADDRESSES,
                                       "sender_name": SENDERS})


def _html(settings: Settings, language: str) -> str:
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, language)
    return Personaliser(rendered).html(sample_values(settings, language))


@pytest.mark.parametrize("language", ["en", "cy"])
def test_masthead_footer_line_and_address_are_in_the_emails_language(settings, language):
    other = "cy" if language == "en" else "en"
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, language)
    for part in (rendered.html, rendered.text):
        assert NAMES[language] in part and ADDRESSES[language] in part
        assert NAMES[other] not in part and ADDRESSES[other] not in part
    welsh_footer = "Fe wnaethoch chi danysgrifio i Newyddion y Rhwydwaith"
    assert (welsh_footer in rendered.text) == (language == "cy")


def test_bilingual_language_note_links_to_the_top_of_the_other_half(settings):
    document = lxml.html.fromstring(_html(settings, "both"))
    (note,) = document.xpath('//a[starts-with(@href, "#")]')
    assert note.text_content().strip() == "Scroll down for the English version."
    target = note.get("href")[1:]
    (anchor,) = document.xpath(f'//*[@id="{target}"]')
    english_block = anchor.xpath('ancestor::*[@lang="en"]')
    assert english_block, "the anchor is inside the English block"
    welsh_block = document.xpath('//*[@lang="cy"]')[0]
    order = list(document.iter())
    assert order.index(welsh_block) < order.index(anchor), "the Welsh block comes first, the link goes down"


def test_from_and_list_id_display_names_in_the_readers_language(settings):
    builder = MessageBuilder(settings, render_variants(settings, load_issue(SAMPLE_BILINGUAL)), send_id=1)
    shown = {}
    for language in ("en", "cy", "both"):
        data = builder.build(Recipient(email="reader@example.org", name="", language=language, subscriber_id=1,
                                       delivery_id=None))
        message = message_from_bytes(data, policy=policy.default)
        shown[language] = (message["From"].addresses[0].display_name, message["List-Id"])
    assert shown["en"] == ("Co-production Network for Wales", "Network News <news.example.org>")
    assert shown["cy"] == ("Rhwydwaith Cydgynhyrchu Cymru", "Newyddion y Rhwydwaith <news.example.org>")
    assert shown["both"] == ("Rhwydwaith Cydgynhyrchu Cymru / Co-production Network for Wales",
                             "Newyddion y Rhwydwaith / Network News <news.example.org>")


@pytest.mark.parametrize("language", ["en", "cy"])
def test_a_notice_comes_from_the_sender_named_in_the_readers_language(settings, language):
    notice = build_notice(settings, to="reader@example.org", subject="Confirm", text="Hello", language=language)
    assert notice["From"].addresses[0].display_name == SENDERS[language]
    assert notice["Date"].endswith("+0000")  # RFC 5322 4.3: not the obsolete "GMT"


def test_lint_names_the_list_texts_and_topics_missing_welsh(cli_env, workdir, monkeypatch):
    (workdir / "mailer.toml").write_text('languages = ["en", "cy"]\nlist_name = "Network News"\n'
                                         'postal_address = {en = "Cardiff", cy = "Caerdydd"}\n'
                                         'sender_name = {en = "The Network", cy = "Y Rhwydwaith"}\n')
    engine = make_engine(f"sqlite:///{workdir / 'mailer.db'}")
    upgrade(engine)
    with new_session(engine) as db:
        add_topic(db, name="events", label="Events", label_cy="Digwyddiadau", description="Gatherings")
        add_topic(db, name="reports", label="Reports", label_cy="Adroddiadau")
        db.commit()
    engine.dispose()
    monkeypatch.delenv("MAILER_LIST_NAME")
    monkeypatch.delenv("MAILER_POSTAL_ADDRESS")
    monkeypatch.delenv("MAILER_SENDER_NAME", raising=False)
    cli_settings.cache_clear()
    result = CliRunner().invoke(main, ["issue", "lint", str(SAMPLE_BILINGUAL)])
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == [
        'mailer.toml:2: list_name: one text for every language; give each language its own: list_name = {en = "...", cy = "..."}',
        'topic events: no Welsh description; add it with: mailer topics edit events --description-cy "..."',
    ]
    cli_settings.cache_clear()
