"""`mailer issue lint --parity`: the language versions differ in sections, links, buttons or images,
or a Welsh block links to an English page where the issue gives a Welsh one."""

from __future__ import annotations

from click.testing import CliRunner

from mailer.cli import main
from mailer.content import load_issue
from mailer.content.parity import parity_problems
from tests.content.conftest import SAMPLE_BILINGUAL, SAMPLE_EN

HEAD = """\
title: {en: "News", cy: "Newyddion"}
date: 2026-12-01
languages: [en, cy]
preheader: {en: "A new network", cy: "Rhwydwaith newydd"}
sections:
"""


def messages(path) -> list[str]:
    return [f"{problem.field}: {problem.message}" for problem in parity_problems(load_issue(path))]


def test_the_samples_are_at_parity():
    assert messages(SAMPLE_BILINGUAL) == [] and messages(SAMPLE_EN) == []


def test_markdown_that_differs_in_links_images_or_subheadings(write_issue):
    path = write_issue(HEAD + """\
  - heading: {en: "Launch", cy: "Lansio"}
    body:
      en: |
        ## What happened
        Read [the report](https://example.org/report) and [the letter](https://example.org/letter).

        ![The launch](https://example.org/launch.jpg)
      cy: |
        Darllenwch [yr adroddiad](https://example.org/cy/adroddiad).
""")
    assert messages(path) == [
        "sections[0].body.cy: the English has 2 links, the Welsh 1",
        "sections[0].body.cy: the English has 1 image, the Welsh 0",
        "sections[0].body.cy: the English has 1 subheading, the Welsh 0",
    ]


def test_a_welsh_block_linking_to_the_english_page_where_a_welsh_one_is_given(write_issue):
    path = write_issue(HEAD + """\
  - heading: {en: "The proposal", cy: "Y cynnig"}
    button:
      label: {en: "Read the proposal", cy: "Darllen y cynnig"}
      url: {en: "https://example.org/proposal", cy: "https://example.org/cy/cynnig"}
  - heading: {en: "Again", cy: "Eto"}
    body:
      en: "As the [proposal](https://example.org/proposal) says."
      cy: "Fel mae'r [cynnig](https://example.org/proposal) yn ei ddweud."
    links:
      - title: {en: "The proposal", cy: "Y cynnig"}
        url: "https://example.org/proposal"
""")
    welsh_page = "the Welsh links to https://example.org/proposal, the English page; the issue gives the Welsh one, " \
                 "https://example.org/cy/cynnig"
    assert messages(path) == [f"sections[1].body.cy: {welsh_page}", f"sections[1].links[0].url: {welsh_page}"]


def test_texts_given_in_one_language_only(write_issue):
    path = write_issue("""\
title: {en: "News", cy: "Newyddion"}
date: 2026-12-01
sections:
  - heading: {en: "Launch", cy: "Lansio"}
  - heading: {en: "Only English here"}
    image: {src: "https://example.org/a.jpg", alt: {en: "A photo"}}
""")
    assert messages(path) == ["sections[1].heading.en: has English but no Welsh (cy:)",
                              "sections[1].image.alt.en: has English but no Welsh (cy:)"]


def test_lint_parity_fails_where_plain_lint_does_not(write_issue, cli_env):
    path = write_issue(HEAD + """\
  - heading: {en: "Launch", cy: "Lansio"}
    body:
      en: "Read [the report](https://example.org/report)."
      cy: "Darllenwch yr adroddiad."
""")
    assert CliRunner().invoke(main, ["issue", "lint", str(path)]).exit_code == 0
    result = CliRunner().invoke(main, ["issue", "lint", "--parity", str(path)])
    assert result.exit_code == 1
    assert "issue.yaml:9:11: sections[0].body.cy: the English has 1 link, the Welsh 0" in result.output
