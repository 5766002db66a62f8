"""Loading issues: the samples pass, and every kind of mistake is reported at its line."""

from __future__ import annotations

import datetime as dt

import pytest

from mailer.content import load_issue
from mailer.content.loader import MAX_BYTES
from mailer.errors import IssueError
from tests.content.conftest import MINIMAL, SAMPLE_BILINGUAL, SAMPLE_EN


def problems(path) -> list[str]:
    with pytest.raises(IssueError) as caught:
        load_issue(path)
    return [str(problem).removeprefix(f"{path}:") for problem in caught.value.problems]


def test_samples_load():
    english = load_issue(SAMPLE_EN)
    assert english.languages == ["en"]
    assert english.slug == "2026-11-open-letter"
    bilingual = load_issue(SAMPLE_BILINGUAL)
    assert bilingual.languages == ["en", "cy"]
    assert bilingual.title.get("cy") == "Rhwydwaith cydgynhyrchu i Gymru"


def test_minimal_issue_and_the_example_shape(write_issue):
    issue = load_issue(write_issue(MINIMAL))
    assert issue.date == dt.date(2026, 12, 1)
    assert issue.topics == [] and issue.languages == ["en"]
    example = write_issue("""\
        title: "Network news: December"
        date: 2026-12-01
        preheader: "A new network for Wales, and what comes next"
        topics: [news]
        intro: |
          Markdown.
        sections:
          - heading: "A network for Wales"
            body: |
              Markdown: **bold**, _italic_, [links](https://example.org), lists, quotes.
            image: {src: "https://example.org/launch.jpg", alt: "Members at the launch"}
            button: {label: "Read the proposal", url: "https://example.org/proposal"}
          - heading: "Publications"
            links:
              - {title: "Co-production catalogue", url: "https://example.org/catalogue", note: "Case studies"}
        """)
    loaded = load_issue(example)
    assert loaded.sections[1].links[0].note.get("en") == "Case studies"


def test_bad_url_names_line_column_and_field(write_issue):
    path = write_issue(MINIMAL + "    button: {label: Go, url: 'javascript:alert(1)'}\n")
    assert problems(path) == ["8:30: sections[0].button.url: javascript: addresses are not allowed here; use https:, http: or mailto:"]


@pytest.mark.parametrize("url, expected", [
    ("data:text/html;base64,PHNjcmlwdD4=", "data: addresses are not allowed"),
    ("https://", "not a valid URL"),
    ("https://exa mple.org", "not a valid URL"),
    ("mailto:nobody", "not a valid mailto: address"),
    ("ftp://example.org/file", "ftp: addresses are not allowed"),
])
def test_every_bad_url_kind(write_issue, url, expected):
    path = write_issue(MINIMAL + f"    button: {{label: Go, url: '{url}'}}\n")
    [problem] = problems(path)
    assert problem.startswith("8:") and expected in problem


def test_image_may_not_be_mailto(write_issue):
    path = write_issue(MINIMAL + "    image: {src: 'mailto:a@example.org', alt: x}\n")
    assert "mailto: addresses are not allowed here; use https: or http:" in problems(path)[0]


def test_markdown_link_points_to_its_own_line(write_issue):
    path = write_issue(MINIMAL.replace("      Some **news**.\n", "      Some **news**.\n\n      A [trap](javascript:alert(1)).\n"))
    assert problems(path) == ["9:7: sections[0].body: link 'javascript:alert(1)': javascript: addresses are not allowed here; use https:, http: or mailto:"]


def test_missing_unknown_and_wrongly_typed_fields(write_issue):
    path = write_issue("""\
        title: yes
        date: 2026-13-01
        sections:
          - heding: "Typo"
            body: 12
        """)
    assert problems(path) == [
        "1:8: title: expected text, or one text per language like {en: ..., cy: ...} "
        "(YAML reads yes/no/true/false as a yes-or-no value: put the text in quotes)",
        "2:7: date: not a valid date: write it like 2026-12-01",
        "4:5: sections[0].heding: unknown field (did you mean 'heading'?)",
        "5:11: sections[0].body: expected text, or one text per language like {en: ..., cy: ...} "
        "(YAML reads this as a number: put it in quotes)",
    ]


def test_required_fields_point_at_their_parent(write_issue):
    path = write_issue("date: 2026-12-01\nsections: []\n")
    assert problems(path) == ["1:1: title: is required", "2:11: sections: List should have at least 1 item after validation, not 0"]


def test_empty_section_and_event_times(write_issue):
    path = write_issue(MINIMAL + (
        "  - links: []\n"
        "  - heading: Event\n"
        "    event: {starts: 2027-01-12 15:00, ends: 2027-01-12 10:00, place: Cardiff}\n"))
    assert problems(path) == [
        "8:5: sections[1]: a section needs at least a heading, body, image, event or links",
        "10:12: sections[2].event: ends before it starts",
    ]


def test_yaml_syntax_error_names_where_the_unclosed_part_begins(write_issue):
    path = write_issue('title: "unclosed\ndate: 2026-12-01\n')
    assert problems(path) == [("3:1: YAML syntax error: found unexpected end of stream "
                               "(while scanning a quoted scalar that begins on line 1, column 8)")]
    path = write_issue("title: x\ndate: 2026-12-01\nsections:\n\t- heading: x\n")
    assert problems(path) == [("4:1: YAML syntax error: found character '\\t' that cannot start any token "
                               "(YAML indents with spaces, not tabs)")]


def test_not_a_mapping_and_empty_file(write_issue):
    assert problems(write_issue("- just\n- a list\n")) == ["1:1: expected the issue's fields (title:, date:, sections: ...)"]
    assert problems(write_issue("")) == ["1:1: expected the issue's fields (title:, date:, sections: ...)"]


def test_duplicate_keys_are_refused(write_issue):
    path = write_issue(MINIMAL + "title: again\n")
    assert problems(path) == ["8:1: title: given twice (first on line 1)"]


def test_unreadable_files(tmp_path):
    assert "cannot read the file" in problems(tmp_path / "missing.yaml")[0]
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("title: Sïan\n".encode("latin-1"))
    assert "not UTF-8" in problems(latin1)[0]


def test_huge_file_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("title: " + "x" * MAX_BYTES + "\n")
    [problem] = problems(path)
    assert problem.startswith("1:1: file is") and "at most 1,000,000" in problem


def test_alias_bomb_refused(write_issue):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 9):
        previous = chr(ord("a") + index - 1)
        lines.append(f"{chr(ord('a') + index)}: &{chr(ord('a') + index)} [{', '.join(['*' + previous] * 9)}]")
    [problem] = problems(write_issue("\n".join(lines) + "\n"))
    assert "refusing the file" in problem


def test_recursive_alias_and_deep_nesting_refused(write_issue):
    assert "refers to itself" in problems(write_issue("title: &a [*a]\n"))[0]
    assert "nested more than" in problems(write_issue("title: " + "[" * 200 + "]" * 200 + "\n"))[0]


def test_python_objects_are_not_constructed(write_issue):
    [problem] = problems(write_issue("title: !!python/object/apply:os.system ['echo hi']\n"))
    assert "could not determine a constructor" in problem


def test_bilingual_issue_reports_missing_welsh(write_issue):
    path = write_issue("""\
        title: {en: "News", cy: "Newyddion"}
        date: 2026-12-01
        languages: [en, cy]
        preheader: {en: "Only English here"}
        sections:
          - heading: "Plain string"
            button: {label: {en: Go, cy: Ewch}, url: "https://example.org"}
        """)
    assert problems(path) == [
        "4:12: preheader: missing the Welsh text (cy:)",
        "6:14: sections[0].heading: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
    ]


def test_english_issue_needs_english_text(write_issue):
    path = write_issue(MINIMAL.replace('title: "Network news: December"', "title: {cy: Newyddion}"))
    assert problems(path) == ["1:8: title: missing the English text (en:)"]


def test_unknown_language_and_duplicate_language(write_issue):
    path = write_issue(MINIMAL.replace("preheader:", "languages: [en, en]\npreheader:").replace(
        '"A new network for Wales"', "{en: Hi, fr: Salut}"))
    assert problems(path) == [
        "3:12: languages: lists a language twice",
        "4:25: preheader.fr: unknown language 'fr': use en or cy",
    ]


def test_every_problem_in_one_pass_including_missing_welsh(write_issue):
    # Five mistakes of form and seven texts without their Welsh: all reported by the first run.
    path = write_issue("""\
        title: {en: "Network news", cy: "Newyddion"}
        date: 2026-13-01
        languages: [en, cy]
        preheader: "A new network"
        intro: "Hello"
        sections:
          - heding: {en: "A network", cy: "Rhwydwaith"}
            body: "Some news"
          - heading: {en: "Links"}
            links:
              - {title: "Catalogue", url: "javascript:alert(1)", note: "Case studies"}
            button: {label: {en: "Read"}, url: "ftp://example.org/x"}
        sign_off: "Thanks"
        greeting: maybe
        """)
    found = problems(path)
    assert found == [
        "2:7: date: not a valid date: write it like 2026-12-01",
        "4:12: preheader: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "5:8: intro: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "7:5: sections[0].heding: unknown field (did you mean 'heading'?)",
        "8:11: sections[0].body: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "9:14: sections[1].heading: missing the Welsh text (cy:)",
        "11:17: sections[1].links[0].title: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "11:35: sections[1].links[0].url: javascript: addresses are not allowed here; use https:, http: or mailto:",
        "11:64: sections[1].links[0].note: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "12:21: sections[1].button.label: missing the Welsh text (cy:)",
        "12:40: sections[1].button.url: ftp: addresses are not allowed here; use https:, http: or mailto:",
        "13:11: sign_off: missing the Welsh text (cy:): give both, as {en: ..., cy: ...}",
        "14:11: greeting: Input should be a valid boolean, unable to interpret input",
    ]


def test_an_empty_alt_marks_a_decorative_image(write_issue):
    issue = load_issue(write_issue(MINIMAL + '  - image: {src: "https://example.org/line.png", alt: ""}\n'))
    assert issue.sections[1].image.alt.get("en") == ""
    bilingual = MINIMAL.replace("preheader:", "languages: [en, cy]\npreheader:")
    found = problems(write_issue(bilingual + '  - image: {src: "https://example.org/line.png", alt: ""}\n'))
    assert not [problem for problem in found if "alt" in problem]  # decorative in both languages at once
    assert "8:55: sections[1].image.alt: is empty" in problems(
        write_issue(MINIMAL + '  - image: {src: "https://example.org/line.png", alt: "  "}\n'))


def test_an_unquoted_colon_gets_a_hint_to_quote(write_issue):
    path = write_issue(MINIMAL.replace('"Network news: December"', "Network news: December"))
    assert problems(path) == [
        '1:20: YAML syntax error: mapping values are not allowed here '
        '(a text containing ": " needs quotes: title: "Network news: December")']
