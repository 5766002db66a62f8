"""Personalisation: cheap, exact, and never a way for a subscriber's data to become code or markup."""

from __future__ import annotations

import re

import pytest

from mailer.content import PLACEHOLDER_FIELDS, Personaliser, Rendered, load_issue, placeholder, render_issue
from mailer.content.personalise import if_given
from tests.content.conftest import SAMPLE_BILINGUAL, SAMPLE_EN

VALUES = {
    "name": "Siân",
    "email": "sian@example.org",
    "unsubscribe_url": "https://news.example.org/u/abc",
    "preferences_url": "https://news.example.org/p/abc",
    "web_url": "https://news.example.org/archive/1",
}


def make(html: str, text: str = "", subject: str = "") -> Personaliser:
    return Personaliser(Rendered("en", subject, "", html, text, ""))


def test_placeholders_are_plain_words():
    assert placeholder("unsubscribe_url") == "__MAILER_UNSUBSCRIBE_URL__"
    assert [placeholder(field) for field in PLACEHOLDER_FIELDS] == [
        "__MAILER_NAME__", "__MAILER_EMAIL__", "__MAILER_UNSUBSCRIBE_URL__", "__MAILER_PREFERENCES_URL__", "__MAILER_WEB_URL__"]
    with pytest.raises(ValueError):
        placeholder("password")


def test_fills_every_part():
    personal = make('<p>Hi __MAILER_NAME__</p><a href="__MAILER_UNSUBSCRIBE_URL__">x</a>', "Hi __MAILER_NAME__", "For __MAILER_NAME__")
    assert personal.html(VALUES) == '<p>Hi Siân</p><a href="https://news.example.org/u/abc">x</a>'
    assert personal.text(VALUES) == "Hi Siân"
    assert personal.subject(VALUES) == "For Siân"


@pytest.mark.parametrize("name", ["{{ 7*7 }}", "{% for x in range(9) %}x{% endfor %}", "${7*7}", "<script>alert(1)</script>",
                                  '"><img src=x onerror=alert(1)>', "__MAILER_UNSUBSCRIBE_URL__"])
def test_subscriber_data_is_never_code_or_markup(name, settings):
    rendered = render_issue(load_issue(SAMPLE_EN), settings)
    personal = Personaliser(rendered)
    html = personal.html({**VALUES, "name": name})
    text = personal.text({**VALUES, "name": name})
    assert "49" not in html.split("Dear", 1)[1][:40]
    assert "<script>" not in html and "<img src=x" not in html
    assert f"Dear {name}," in text  # plain text carries the name exactly as typed
    assert html.count("https://news.example.org/u/abc") == 1  # a name is never scanned for placeholders


def test_html_values_are_escaped_in_attributes():
    personal = make('<a href="__MAILER_WEB_URL__">__MAILER_NAME__</a>')
    out = personal.html({**VALUES, "web_url": 'https://x.org/?a=1&b="2"', "name": "A & B <c>"})
    assert out == '<a href="https://x.org/?a=1&amp;b=&quot;2&quot;">A &amp; B &lt;c&gt;</a>'


def test_subject_values_cannot_add_header_lines():
    personal = make("", subject="News for __MAILER_NAME__")
    assert personal.subject({**VALUES, "name": "Eve\r\nBcc: victim@example.org"}) == "News for Eve Bcc: victim@example.org"


def test_missing_value_is_a_clear_error():
    with pytest.raises(KeyError, match="no value for placeholder 'email'"):
        make("__MAILER_EMAIL__").html({"name": "x"})


def test_text_without_placeholders_is_returned_as_is():
    assert make("<p>static</p>").html({}) == "<p>static</p>"


@pytest.fixture
def bilingual(settings) -> Personaliser:
    return Personaliser(render_issue(load_issue(SAMPLE_BILINGUAL), settings, "both"))


@pytest.mark.parametrize("name", ["", "  ", "\r\n"])
def test_a_bilingual_reader_without_a_name_is_greeted_in_each_language(bilingual, name):
    html, text = bilingual.html({**VALUES, "name": name}), bilingual.text({**VALUES, "name": name})
    for part in (html, text):
        assert "Annwyl ddarllenydd," in part and "Dear reader," in part
        assert "Dear ddarllenydd" not in part and "Annwyl reader" not in part
        assert part.index("Annwyl ddarllenydd,") < part.index("Dear reader,")


def test_a_bilingual_reader_with_a_name_gets_it_in_both_greetings(bilingual):
    text = bilingual.text({**VALUES, "name": "Siân\r\nBcc: x"})
    assert "Annwyl Siân Bcc: x," in text and "Dear Siân Bcc: x," in text


OPTIONAL = if_given("<p>to __MAILER_EMAIL__ (__MAILER_NAME__)</p>", "email")
GREETING = if_given("Dear __MAILER_NAME__,", "name", otherwise="Dear reader,")


def test_if_given_markers():
    assert if_given("<p>to __MAILER_EMAIL__</p>", "email") == "__MAILER_IF_EMAIL__<p>to __MAILER_EMAIL__</p>__MAILER_ENDIF__"
    assert GREETING == "__MAILER_IF_NAME__Dear __MAILER_NAME__,__MAILER_ELSE__Dear reader,__MAILER_ENDIF__"
    with pytest.raises(ValueError):
        if_given("x", "password")


def test_text_is_left_out_without_its_value():
    personal = make(f"<p>a</p>{OPTIONAL}<p>b</p>")
    assert personal.html({"name": "", "email": ""}) == "<p>a</p><p>b</p>"
    assert personal.html({"name": "", "email": "  "}) == "<p>a</p><p>b</p>"
    assert personal.html({"name": "A&B", "email": "x<y>@example.org"}) == \
        "<p>a</p><p>to x&lt;y&gt;@example.org (A&amp;B)</p><p>b</p>"


def test_the_other_text_is_chosen_without_the_value():
    personal = make(f"<p>{GREETING}</p><p>{GREETING}</p>", text=GREETING)
    assert personal.html({"name": ""}) == "<p>Dear reader,</p><p>Dear reader,</p>"
    assert personal.html({"name": "<Siân>"}) == "<p>Dear &lt;Siân&gt;,</p><p>Dear &lt;Siân&gt;,</p>"
    assert personal.text({"name": "Siân"}) == "Dear Siân,"


@pytest.mark.parametrize("template", [OPTIONAL, GREETING])
def test_a_choice_is_one_value_so_the_literal_parts_never_change(template):
    """The delivery engine encodes the literal parts once per send from blank values: they must not depend on values."""
    personal = make(f"<p>a</p>{template}<p>b</p>")
    blank = dict.fromkeys(PLACEHOLDER_FIELDS, "")
    assert personal.html_pieces(blank)[0::2] == personal.html_pieces(VALUES)[0::2] == ["<p>a</p>", "<p>b</p>"]
    assert personal.html_pieces(VALUES)[1::2] != personal.html_pieces(blank)[1::2]


def test_the_web_version_leaves_out_why_you_get_this_email(bilingual):
    """The archive passes an empty address: no "...with the address ." in either language."""
    anonymous = bilingual.html({**VALUES, "name": "", "email": ""})
    assert "with the address" not in anonymous and "gyda'r cyfeiriad" not in anonymous
    assert "Why you get this email" not in anonymous and "Dad-danysgrifio" in anonymous
    personal = bilingual.html(VALUES)
    assert "You subscribed to Newsletter with the address sian@example.org." in personal
    assert "Fe wnaethoch chi danysgrifio i Newsletter gyda'r cyfeiriad sian@example.org." in personal
    for section in re.findall(r"__MAILER_IF_EMAIL__.*?__MAILER_ENDIF__", bilingual.rendered.html, re.DOTALL):
        assert "\n" not in section  # one value; delivery turns line breaks into CRLF in literal parts only
