"""Personalisation: cheap, exact, and never a way for a subscriber's data to become code or markup."""

from __future__ import annotations

import pytest

from mailer.content import PLACEHOLDER_FIELDS, Personaliser, Rendered, greeting_name, load_issue, placeholder, render_issue
from tests.content.conftest import SAMPLE_EN

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
    assert personal.fields == {"name", "unsubscribe_url"}


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


def test_greeting_name_fallbacks():
    assert greeting_name("  Siân  ", "cy") == "Siân"
    assert greeting_name("", "en") == "friend"
    assert greeting_name(None, "cy") == "gyfaill"
    assert greeting_name("", "both", first="cy") == "gyfaill"
    assert greeting_name("", "both", first="en") == "friend"
    assert greeting_name("Bad\r\nName", "en") == "Bad Name"
