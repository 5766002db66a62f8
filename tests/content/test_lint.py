"""Lint: each warning an editor can act on, located at its line; the samples are clean."""

from __future__ import annotations

import pytest

from mailer.content import load_issue
from mailer.content.lint import GMAIL_CLIP_BYTES, lint_issue
from tests.content.conftest import SAMPLE_BILINGUAL, SAMPLE_EN


def warnings(path, settings) -> list[str]:
    return [str(problem).removeprefix(f"{path}:") for problem in lint_issue(load_issue(path), settings)]


@pytest.mark.parametrize("sample", [SAMPLE_EN, SAMPLE_BILINGUAL])
def test_samples_are_clean(sample, settings):
    assert warnings(sample, settings) == []


def test_every_field_warning(write_issue, settings):
    path = write_issue("""\
        title: "A subject line that goes on and on and on, far longer than any phone could show"
        date: 2026-12-01
        sections:
          - heading: Photos
            image: {src: "http://example.org/a.jpg"}
            body: |
              To read it, [click here](https://example.org/x).

              See [the page](/relative/page) and ![](https://example.org/b.png).
            button: {label: "Here", url: "https://example.org/y"}
        """)
    assert warnings(path, settings) == [
        "1:1: preheader: no preheader: mail programs show the first words of the email instead",
        "1:8: title: the subject is 79 characters; phones show about 40, keep it under 70",
        "5:12: sections[0].image: image without alt text: say what it shows for readers who cannot see it",
        "5:18: sections[0].image.src: http:// link: use https:// (readers' mail programs warn about insecure links)",
        "7:7: sections[0].body: link text 'click here' says nothing on its own; name where the link goes",
        "9:7: sections[0].body: link '/relative/page': relative link: it cannot work in an email; write the full https:// address",
        "9:7: sections[0].body: image 'https://example.org/b.png' without alt text: write ![what it shows](address)",
        "10:21: sections[0].button.label: link text 'Here' says nothing on its own; name where the link goes",
    ]


def test_untranslated_and_unsent_text(write_issue, settings):
    path = write_issue("""\
        title: {en: "News", cy: "Newyddion"}
        date: 2026-12-01
        languages: [en, cy]
        preheader: {en: "Same words", cy: "Same words"}
        sections:
          - heading: {en: "Heading", cy: "Pennawd"}
        """)
    assert warnings(path, settings) == ["4:35: preheader.cy: untranslated: the Welsh text is the same as the English"]
    english_only = write_issue("""\
        title: {en: "News", cy: "Newyddion"}
        date: 2026-12-01
        preheader: "Hello"
        sections:
          - heading: "Heading"
        """, name="english.yaml")
    assert warnings(english_only, settings) == [
        "1:25: title.cy: has Welsh text, but `languages` does not list cy: it is never sent"]


def test_html_over_gmail_limit(write_issue, settings):
    paragraph = "Co-production means working together as equals. " * 40
    sections = "".join(f"  - heading: 'Part {n}'\n    body: '{paragraph}'\n" for n in range(60))
    path = write_issue(f"title: Long\ndate: 2026-12-01\npreheader: Long one\nsections:\n{sections}")
    [warning] = warnings(path, settings)
    size_kb = int(warning.split("HTML is ")[1].split(" KB")[0])
    assert size_kb * 1024 > GMAIL_CLIP_BYTES
    assert warning.startswith("1:1: the en email's HTML is") and "Gmail clips emails over 102 KB" in warning


def test_a_decorative_image_is_fine_a_missing_alt_is_not(write_issue, settings):
    path = write_issue("""\
        title: {en: "News", cy: "Newyddion"}
        date: 2026-12-01
        languages: [en, cy]
        preheader: {en: "Hello", cy: "Helo"}
        sections:
          - image: {src: "https://example.org/line.png", alt: ""}
          - image: {src: "https://example.org/photo.jpg"}
        """)
    assert warnings(path, settings) == [
        "7:12: sections[1].image: image without alt text: say what it shows for readers who cannot see it"]
