"""Rendering: placeholders and responsive rules survive MJML and premailer; footers; languages; no network."""

from __future__ import annotations

import re
import socket
from email import message_from_bytes, policy

import lxml.html
import pytest

from mailer.config import Settings
from mailer.content import Personaliser, Rendered, load_issue, render_issue
from mailer.content.build import sample_message
from mailer.errors import IssueError, RenderError
from tests.content.conftest import ROOT, SAMPLE_BILINGUAL, SAMPLE_EN

PLACEHOLDERS = ["__MAILER_NAME__", "__MAILER_EMAIL__", "__MAILER_UNSUBSCRIBE_URL__", "__MAILER_PREFERENCES_URL__", "__MAILER_WEB_URL__"]


@pytest.fixture
def english(settings: Settings) -> Rendered:
    return render_issue(load_issue(SAMPLE_EN), settings)


@pytest.fixture
def bilingual(settings: Settings) -> Rendered:
    return render_issue(load_issue(SAMPLE_BILINGUAL), settings, "both")


def test_placeholders_survive_mjml_and_premailer(english):
    for marker in PLACEHOLDERS:
        assert marker in english.mjml and marker in english.html, marker
    for marker in ["__MAILER_UNSUBSCRIBE_URL__", "__MAILER_PREFERENCES_URL__", "__MAILER_WEB_URL__"]:
        assert f'href="{marker}?lang=en"' in english.html  # the pages open in the language of the block
    assert "%5F%5F" not in english.html and "%7B" not in english.html


def test_responsive_media_rules_keep_important(english):
    media = re.findall(r"@media[^{]*\{.*?\}\s*\}", english.html, re.S)
    column_rules = [rule for rule in media if "mj-column-per-" in rule]
    assert column_rules and all("!important" in rule for rule in column_rules)
    assert any(".date div" in rule and "!important" in rule for rule in media)  # our own phone rule


def test_css_is_inlined_and_doctype_kept(english):
    assert english.html.lower().startswith("<!doctype html>")
    assert re.search(r'<h1 style="[^"]*font-size:\s*30px', english.html)
    assert "fonts.googleapis" not in english.html and "@import" not in english.html
    assert "#outlook a" in english.html.split("</head>")[0]  # MJML's resets stay in <head>, not on every cell


def test_footer_in_html_and_text(english, settings):
    for part in (english.html, english.text):
        assert settings.postal_address in part
        assert f"You subscribed to {settings.list_name}" in part
        assert "Why you get this email" in part
        for label in ("Unsubscribe", "Update your preferences", "View in browser"):
            assert label in part
    assert "Unsubscribe:\n__MAILER_UNSUBSCRIBE_URL__" in english.text  # the link alone on its line
    assert "View in browser:\n__MAILER_WEB_URL__" in english.text


def test_text_is_written_from_the_content(english):
    text = english.text
    assert "All together: an open letter, and a reply\n=====" in text
    assert "__MAILER_IF_NAME__Dear __MAILER_NAME__,__MAILER_ELSE__Dear reader,__MAILER_ENDIF__" in text
    assert "Read the First Minister's reply:\nhttps://example.org/letters/reply" in text
    assert "- Co-production catalogue: seeing is believing\n  https://example.org/publications/catalogue" in text
    assert "When: Thursday 19 November 2026, 10:00–12:30" in text
    assert "<" not in text.replace("<b>", "")


def test_issue_html_is_escaped(write_issue, settings):
    path = write_issue("""\
        title: "Tom & Jerry <script>"
        date: 2026-12-01
        preheader: "x"
        sections:
          - heading: '<img src=x onerror=alert(1)>'
            image: {src: "https://example.org/a.jpg", alt: 'quote " and <b>'}
        """)
    rendered = render_issue(load_issue(path), settings)
    assert "<script>" not in rendered.html and "<img src=x" not in rendered.html
    assert "Tom &amp; Jerry &lt;script&gt;" in rendered.html
    assert lxml.html.fromstring(rendered.html).xpath("//img/@alt") == ['quote " and <b>']


def test_welsh_variant(settings):
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, "cy")
    assert rendered.subject == "Rhwydwaith cydgynhyrchu i Gymru"
    assert '<html lang="cy"' in rendered.html
    assert "1 Rhagfyr 2026" in rendered.html  # Babel's Welsh date
    assert "Dydd Iau 21 Ionawr 2027, 10:00–15:30" in rendered.text
    for welsh in ("Dad-danysgrifio", "Diweddaru eich dewisiadau", "Gweld yn eich porwr", "Annwyl __MAILER_NAME__,", "Annwyl ddarllenydd,",
                  "Pam rydych chi'n cael yr e-bost hwn", "Pryd", "Ble"):
        assert welsh in rendered.html and welsh in rendered.text, welsh
    assert "Unsubscribe" not in rendered.html and "Gŵyl Dewi" in rendered.text


def test_bilingual_email_has_both_with_lang_attributes(bilingual, settings):
    assert settings.bilingual_first == "cy"
    assert bilingual.subject == "Rhwydwaith cydgynhyrchu i Gymru / A co-production network for Wales"
    assert '<html lang="cy"' in bilingual.html
    blocks = re.findall(r'<div class="mailer-lang-(\w+)" lang="(\w+)"', bilingual.html)
    assert blocks == [("en", "en"), ("cy", "cy"), ("en", "en")]  # note in English, then Welsh, then English
    welsh_at, english_at = bilingual.html.index("Annwyl __MAILER_NAME__"), bilingual.html.index("Dear __MAILER_NAME__")
    assert welsh_at < english_at
    assert bilingual.html.index("Dad-danysgrifio") < bilingual.html.index(">Unsubscribe<")
    assert bilingual.text.startswith("Scroll down for the English version.")
    assert bilingual.text.index("Annwyl") < bilingual.text.index("Dear")


def test_english_first_when_set(settings):
    settings = settings.model_copy(update={"bilingual_first": "en"})
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, "both")
    assert '<html lang="en"' in rendered.html
    assert rendered.subject.startswith("A co-production network")
    assert rendered.text.startswith("Sgroliwch i lawr am y fersiwn Gymraeg.")


@pytest.mark.parametrize(("first", "title"), [("cy", "Rhwydwaith cydgynhyrchu i Gymru"), ("en", "A co-production network for Wales")])
def test_bilingual_title_is_in_the_first_language_only(settings, first, title):
    """<title> and the aria-label MJML makes of it take no markup, so no `lang` could mark the other half."""
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings.model_copy(update={"bilingual_first": first}), "both")
    document = lxml.html.fromstring(rendered.html)
    assert document.get("lang") == first
    assert document.findtext(".//title") == title
    assert document.xpath("//body//@aria-label") == [title]
    assert " / " in rendered.subject  # the subject still names both


def test_quotes_are_as_typed_everywhere(write_issue, settings):
    """No smart quotes anywhere: the body's apostrophes match the title's, headings', link notes' and the catalogue's."""
    path = write_issue("""\
        title: "The editor's pick"
        date: 2026-12-01
        preheader: "What's new"
        sections:
          - heading: "Don't miss it"
            body: |
              It's here: "the network's launch" and 'more'.
            links:
              - {title: "The team's report", url: "https://example.org/r", note: "Read the chair's note"}
        """)
    rendered = render_issue(load_issue(path), settings)
    for part in (rendered.text, rendered.html):
        for typed in ("The editor's pick", "Don't miss it", "It's here:", "The team's report", "Read the chair's note"):
            assert typed in part.replace("&#x27;", "'").replace("&#39;", "'"), typed
        assert not set("‘’“”") & set(part)
    assert "It's here: \"the network's launch\" and 'more'." in rendered.text


def test_language_not_in_issue_is_refused(settings):
    with pytest.raises(IssueError, match="not written in Welsh"):
        render_issue(load_issue(SAMPLE_EN), settings, "cy")
    with pytest.raises(ValueError):
        render_issue(load_issue(SAMPLE_EN), settings, "fr")


def test_rendered_round_trips_as_json_data(bilingual):
    import json

    again = Rendered.from_dict(json.loads(json.dumps(bilingual.to_dict())))
    assert again == bilingual


def test_welsh_survives_into_a_message(settings):
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, "cy")
    message = message_from_bytes(sample_message(rendered, settings), policy=policy.default)
    assert message["Subject"] == "Rhwydwaith cydgynhyrchu i Gymru"
    text = message.get_body(("plain",)).get_content()
    assert "Annwyl Siân Roberts," in text and "Tŷ Hywel" in text and "storïau" in text and "Gŵyl" in text
    assert "Tîm Cydgynhyrchu Cymru" in message.get_body(("html",)).get_content()


def test_welsh_subject_is_encoded_and_decoded(write_issue, settings):
    path = write_issue("""\
        title: {en: "St David's Day: news from the House", cy: "Gŵyl Dewi: newyddion o'r Tŷ, â chân"}
        date: 2027-03-01
        languages: [en, cy]
        preheader: {en: "Festival", cy: "Gŵyl"}
        sections:
          - heading: {en: "Team", cy: "Tîm"}
        """)
    rendered = render_issue(load_issue(path), settings, "cy")
    raw = sample_message(rendered, settings)
    assert b"=?utf-8?" in raw.split(b"\n\n", 1)[0].lower().replace(b"\r", b"")
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "Gŵyl Dewi: newyddion o'r Tŷ, â chân"
    assert "Tîm" in message.get_body(("plain",)).get_content()


def test_rendering_makes_no_network_connection(monkeypatch, settings):
    attempts = []

    def refuse(self, address):  # a guard, not a stand-in: any attempt fails the test
        attempts.append(address)
        raise OSError("network used during rendering")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: attempts.append(args) or [])
    issue = load_issue(SAMPLE_BILINGUAL)
    for language in ("en", "cy", "both"):
        render_issue(issue, settings, language)
    assert attempts == []


@pytest.mark.parametrize("head", ['<mj-font name="Lato" href="https://fonts.example.org/lato.css" />'
                                  '<mj-attributes><mj-all font-family="Lato, Arial" /></mj-attributes>',
                                  "<mj-style>@import url(https://example.org/x.css);</mj-style>"])
def test_templates_that_would_fetch_are_refused(tmp_path, settings, head):
    email = tmp_path / "email"
    email.mkdir()
    for template in (ROOT / "mailer" / "templates" / "email").iterdir():
        text = template.read_text(encoding="utf-8")
        if template.name == "layout.mjml.j2":
            text = text.replace("</mj-head>", head + "</mj-head>")
        (email / template.name).write_text(text, encoding="utf-8")
    custom = settings.model_copy(update={"templates_dir": str(tmp_path)})
    with pytest.raises(RenderError, match="network"):
        render_issue(load_issue(SAMPLE_EN), custom)


def test_broken_template_is_a_clear_error(tmp_path, settings):
    email = tmp_path / "email"
    email.mkdir()
    (email / "layout.mjml.j2").write_text("<mjml>{% if %}</mjml>", encoding="utf-8")
    custom = settings.model_copy(update={"templates_dir": str(tmp_path)})
    with pytest.raises(RenderError, match="template error"):
        render_issue(load_issue(SAMPLE_EN), custom)


def test_personalised_sample_has_no_placeholders_left(english, settings):
    from mailer.content.build import sample_values

    personal = Personaliser(english)
    html = personal.html(sample_values(settings, "en"))
    assert "__MAILER_" not in html and 'href="https://news.example.org/u/' in html
