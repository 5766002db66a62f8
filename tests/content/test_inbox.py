"""Inbox-ready: what spam filters and the RFCs check, on every sample issue and language, with and without a name.

The scores themselves are measured with SpamAssassin by `bench/spam_scores.py` (docs/issues.md);
these tests pin each cause it found: the rule's own pattern, the colours, the attributes, the headers.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from html.parser import HTMLParser

import pytest

from mailer.content import load_issue, render_issue
from mailer.content.build import SAMPLE_NAMES, sample_message
from mailer.content.text import wrap_line
from tests.content.conftest import SAMPLE_BILINGUAL, SAMPLE_EN

VARIANTS = [(SAMPLE_EN, "en"), (SAMPLE_BILINGUAL, "en"), (SAMPLE_BILINGUAL, "cy"), (SAMPLE_BILINGUAL, "both")]
# SpamAssassin 4.0's rule in 20_phrases.cf: 2.7 points.
DEAR_FRIEND = re.compile(r"^\s*Dear Friend\b", re.IGNORECASE | re.MULTILINE)
ENCODED_WORD = re.compile(rb"=\?[^?]+\?[bqBQ]\?[^?]*\?=")
BODY_BACKGROUND = "#f3f1ec"


def received(settings, sample, language, named):
    rendered = render_issue(load_issue(sample), settings, language)
    return message_from_bytes(sample_message(rendered, settings, named=named), policy=policy.default)


def parts(message) -> tuple[str, str]:
    return tuple(message.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))


@pytest.mark.parametrize("sample, language", VARIANTS)
def test_a_reader_without_a_name_is_not_greeted_dear_friend(settings, sample, language):
    text, html = parts(received(settings, sample, language, named=False))
    for part in (text, html.replace("<p>", "\n")):
        assert not DEAR_FRIEND.search(part)
    greetings = {"en": ["Dear reader,"], "cy": ["Annwyl ddarllenydd,"], "both": ["Annwyl ddarllenydd,", "Dear reader,"]}
    for greeting in greetings[language]:
        assert greeting in text and greeting in html
    named_text, _ = parts(received(settings, sample, language, named=True))
    assert SAMPLE_NAMES[language] in named_text and "ddarllenydd" not in named_text and "Dear reader" not in named_text


def _contrast(foreground: str, background: str) -> float:
    """SpamAssassin's distance between two colours (HTML.pm): under 12 is HTML_FONT_LOW_CONTRAST."""
    red, green, blue = (int(foreground[i:i + 2], 16) - int(background[i:i + 2], 16) for i in (1, 3, 5))
    return ((0.2126 * red) ** 2 + (0.7152 * green) ** 2 + (0.0722 * blue) ** 2) ** 0.5


def test_the_hidden_preheader_is_not_low_contrast(settings):
    rendered = render_issue(load_issue(SAMPLE_BILINGUAL), settings, "both")
    match = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', rendered.html)
    assert match and match.group(2) == rendered.preheader
    style = dict(rule.split(":", 1) for rule in match.group(1).rstrip(";").replace("; ", ";").split(";"))
    assert style["display"] == "none"  # hidden, so no filter reads it as hidden-text spam by colour
    assert _contrast(style["color"].strip(), BODY_BACKGROUND) >= 12
    assert f'background-color:{BODY_BACKGROUND}' in rendered.html.replace(" ", "") or BODY_BACKGROUND in rendered.html


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def images_in(html: str) -> list[dict[str, str | None]]:
    parser = _Images()
    parser.feed(html)
    return parser.images


def test_images_keep_mjmls_width_attribute(settings, write_issue):
    path = write_issue("""\
        title: "Pictures"
        date: 2026-12-01
        preheader: "Pictures"
        sections:
          - image: {src: "https://example.org/a.jpg", alt: "A picture"}
            body: |
              A picture in the text: ![A drawing](https://example.org/b.png)
        """)
    html = render_issue(load_issue(path), settings, "en").html
    images = images_in(html)
    assert len(images) == 2
    assert images[0]["width"] == "544"  # MJML's: the column less its padding, for Outlook
    for image in images:
        assert image["width"] and image["width"].isdigit(), image


@pytest.mark.parametrize("sample, language", VARIANTS)
def test_every_image_has_a_width_attribute(settings, sample, language):
    html = render_issue(load_issue(sample), settings, language).html
    assert all(image["width"] and image["width"].isdigit() for image in images_in(html))


def test_a_long_welsh_subject_folds_into_encoded_words_of_75_characters_at_most(settings, write_issue):
    subject = "Rhwydwaith cydgynhyrchu i Gymru: ymunwch â ni yng Nghaerdydd ym mis Ionawr — dathlu, gweithdai a chinio i bawb"
    path = write_issue(f"""\
        title: {{en: "Network", cy: "{subject}"}}
        date: 2027-01-04
        languages: [en, cy]
        preheader: {{en: "News", cy: "Newyddion"}}
        sections:
          - heading: {{en: "Team", cy: "Tîm"}}
        """)
    raw = sample_message(render_issue(load_issue(path), settings, "cy"), settings)
    head = raw.split(b"\r\n\r\n", 1)[0]
    folded = re.search(rb"^Subject:.*?(?=\r\n\S)", head, re.MULTILINE | re.DOTALL).group(0)
    words = ENCODED_WORD.findall(folded)
    assert len(words) > 1 and all(len(word) <= 75 for word in words), [len(word) for word in words]
    assert all(len(line) <= 78 for line in folded.split(b"\r\n"))
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject


def test_date_is_in_numeric_form(settings):
    raw = sample_message(render_issue(load_issue(SAMPLE_EN), settings, "en"), settings)
    date = next(line for line in raw.split(b"\r\n") if line.startswith(b"Date:"))
    assert date.endswith(b" +0000"), date


def _alone(line: str) -> bool:
    """A line holding only an address (and maybe a full stop): the one kind allowed past 78 columns."""
    return re.fullmatch(r"\s*\S+", line) is not None and ("://" in line or "@" in line)


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("sample, language", VARIANTS)
def test_text_part_lines_fit_78_columns(settings, sample, language, named):
    text, _ = parts(received(settings, sample, language, named))
    long_lines = [line for line in text.splitlines() if len(line) > 78 and not _alone(line)]
    assert not long_lines


def test_text_part_says_what_images_show(settings, write_issue):
    path = write_issue("""\
        title: "Pictures"
        date: 2026-12-01
        preheader: "Pictures"
        sections:
          - heading: "Launch"
            image: {src: "https://example.org/a.jpg", alt: "Members at the launch", href: "https://example.org/launch"}
            body: |
              Before: ![A drawing of the hall](https://example.org/b.png)
          - image: {src: "https://example.org/line.png", alt: ""}
            body: "A decorative line above."
        """)
    text = render_issue(load_issue(path), settings, "en").text
    assert "[Members at the launch]\nhttps://example.org/launch" in text
    assert "Before: [A drawing of the hall]" in text
    assert "[]" not in text  # a decorative image says nothing


def test_wrapping_keeps_indents_and_puts_a_personal_link_on_its_own_line():
    note = "  " + "word " * 20
    wrapped = wrap_line(note.rstrip()).split("\n")
    assert len(wrapped) == 2 and all(line.startswith("  word") and len(line) <= 72 for line in wrapped)
    item = "- " + "long " * 20
    assert all(line.startswith(("- long", "  long")) for line in wrap_line(item.rstrip()).split("\n"))
    assert wrap_line("Unsubscribe: __MAILER_UNSUBSCRIBE_URL__?lang=en") == "Unsubscribe:\n__MAILER_UNSUBSCRIBE_URL__?lang=en"
    greeting = "__MAILER_IF_NAME__Annwyl __MAILER_NAME__,__MAILER_ELSE__Annwyl ddarllenydd yn y gymuned,__MAILER_ENDIF__"
    assert wrap_line(greeting) == greeting  # one choice, never split


def test_a_very_long_address_stands_alone(settings):
    from mailer.delivery.message import MessageBuilder, Recipient

    rendered = render_issue(load_issue(SAMPLE_EN), settings, "en")
    address = "a.very.long.address.of.a.reader.who.likes.long.names@subdomain.example.org"
    raw = MessageBuilder(settings, {"en": rendered}, send_id=None).build(Recipient(email=address, name="Ann"))
    text, _ = parts(message_from_bytes(raw, policy=policy.default))
    assert f"\n{address}.\n" in text
    assert not [line for line in text.splitlines() if len(line) > 78 and not _alone(line)]


def test_build_writes_the_message_as_sent_with_and_without_a_name(settings, tmp_path):
    from mailer.content.build import build_issue

    output = build_issue(load_issue(SAMPLE_BILINGUAL), settings, tmp_path, "both")
    named, nameless = (message_from_bytes(path.read_bytes(), policy=policy.default)
                       for path in output.files if path.name.endswith(".eml"))
    assert named["To"] == "Siân Roberts <reader@example.org>" and nameless["To"] == "reader@example.org"
    for message in (named, nameless):
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "mailto:unsubscribe@example.org" in message["List-Unsubscribe"]  # as the delivery engine writes it
        assert message["Date"].endswith("+0000")
        assert all(part["Content-Transfer-Encoding"] == "base64" for part in message.iter_parts())
        assert b"__MAILER_" not in message.as_bytes()
    assert "Annwyl Siân Roberts," in parts(named)[0] and "Annwyl ddarllenydd," in parts(nameless)[0]
