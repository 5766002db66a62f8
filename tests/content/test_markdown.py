"""Markdown: raw HTML never passes, links keep to the URL rule, and the text twin is readable."""

from __future__ import annotations

from mailer.content import markdown


def test_raw_html_is_escaped_not_passed():
    html = markdown.to_html('Hello <script>alert(1)</script> <img src=x onerror="alert(1)"> <b>bold</b>')
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html


def test_formatting_links_lists_and_quotes_survive():
    html = markdown.to_html("**bold** _it_ [site](https://example.org)\n\n- one\n- two\n\n> quote")
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert '<a href="https://example.org"' in html
    assert "<ul>" in html and "<blockquote>" in html


def test_dangerous_links_never_become_links():
    html = markdown.to_html("[x](javascript:alert(1)) ![y](data:image/png;base64,AAAA) [z](vbscript:x)")
    assert 'href="javascript' not in html and 'src="data:' not in html and "<a " not in html


def test_link_problems_have_line_offsets():
    found = markdown.link_problems("First line\n\nSecond [bad](javascript:x)\nthird [also](data:text/html,x)")
    assert [offset for offset, _ in found] == [2, 3]
    assert "javascript:" in found[0][1]


def test_plain_text_is_wrapped_with_urls():
    text = markdown.to_text(
        "A paragraph with [a link](https://example.org/page) and **bold** words that goes on long enough to wrap.\n\n"
        "- first item\n- second [mail us](mailto:hello@example.org)\n\n> A quotation.\n\n1. one\n2. two"
    )
    assert "a link (https://example.org/page)" in text
    assert "**" not in text and "<" not in text
    assert "- first item" in text and "mail us (hello@example.org)" in text
    assert "> A quotation." in text and "1. one\n2. two" in text
    assert all(len(line) <= 72 for line in text.splitlines())


def test_plain_text_keeps_angle_brackets_as_typed():
    assert markdown.to_text("Use <b> for bold & more") == "Use <b> for bold & more"
