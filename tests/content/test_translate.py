"""A translator's round trip: export -> a translation tool edits the PO or XLIFF -> import -> validate,
with the editor's YAML comments kept, and `lint` telling when the English changed after the Welsh was written."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po, write_po
from click.testing import CliRunner

from mailer.cli import main
from mailer.content import load_issue
from mailer.content.transfiles import XLIFF
from mailer.content.translation import fingerprint
from tests.content.conftest import SAMPLE_BILINGUAL

X = f"{{{XLIFF}}}"
ISSUE = """\
# The December issue. Keep it short: people read it on the bus.
title: "Network news: December"   # also the subject
date: 2026-12-01
languages: [en, cy]
preheader: "A new network for Wales"

sections:
  # The big news first.
  - heading: "A network for Wales"
    body: |
      Some **news**, with [the proposal](https://example.org/proposal).

      A second paragraph.
    button: {label: "Read the proposal", url: {en: "https://example.org/proposal", cy: "https://example.org/cy/cynnig"}}
  - heading: "Worth reading"
    links:
      - title: "Co-production catalogue"   # the best one
        url: "https://example.org/catalogue"

# Always end warmly.
sign_off: |
  Thank you.
"""
WELSH = {
    "title": "Newyddion y rhwydwaith: Rhagfyr",
    "preheader": "Rhwydwaith newydd i Gymru",
    "sections[0].heading": "Rhwydwaith i Gymru",
    "sections[0].body": "Newyddion **da**, gyda [y cynnig](https://example.org/cy/cynnig).\n\nAil baragraff.\n",
    "sections[0].button.label": "Darllen y cynnig",
    "sections[1].heading": "Gwerth eu darllen",
    "sections[1].links[0].title": "Catalog cydgynhyrchu",
    "sign_off": "Diolch.\n",
}


def run(*args: str):
    return CliRunner().invoke(main, ["issue", *args], catch_exceptions=False)


@pytest.fixture
def issue(cli_env, workdir: Path) -> Path:
    path = workdir / "issues" / "2026-12.yaml"
    path.parent.mkdir()
    path.write_text(ISSUE, encoding="utf-8")
    return path


def comments(text: str) -> list[str]:
    return [line[line.index("#"):].strip() for line in text.splitlines() if "#" in line]


def translate_po(path: Path, texts: dict[str, str], *, keep_fuzzy: bool = False) -> None:
    """What a translator's tool does with the PO: fill in msgstr, clear `fuzzy` (unless told not to)."""
    catalog = read_po(path.open("rb"))
    for message in catalog:
        if message.id and message.context in texts:
            message.string = texts[message.context]
            if not keep_fuzzy:
                message.flags.discard("fuzzy")
    out = io.BytesIO()
    write_po(out, catalog)
    path.write_bytes(out.getvalue())


def test_po_round_trip_keeps_the_editors_comments_and_validates(issue, workdir):
    # The issue declares Welsh but has none yet: validate lists every missing text.
    assert run("validate", str(issue)).exit_code == 1
    exported = run("translate", "export", str(issue), "--to", "cy", "-o", "2026-12.cy.po")
    assert exported.exit_code == 0, exported.output
    assert "8 texts to translate into Welsh" in exported.output

    catalog = read_po((workdir / "2026-12.cy.po").open("rb"))
    assert str(catalog.locale) == "cy"
    messages = {message.context: message for message in catalog if message.id}
    assert set(messages) == set(WELSH)
    body = messages["sections[0].body"]
    assert body.id.startswith("Some **news**") and body.string == ""
    assert f"fingerprint: {fingerprint(body.id)}" in body.auto_comments
    assert body.locations == [(str(issue), 11)]  # where the text begins

    translate_po(workdir / "2026-12.cy.po", WELSH)
    imported = run("translate", "import", "2026-12.cy.po")
    assert imported.exit_code == 0, imported.output
    assert "Merged 8 Welsh texts" in imported.output and f"{issue}: ok" in imported.output

    after = issue.read_text(encoding="utf-8")
    assert comments(ISSUE) == [comment for comment in comments(after) if not comment.startswith(
        ("# Written by", "# translated and", "# can tell"))]
    assert "button: {label: {en: \"Read the proposal\", cy: \"Darllen y cynnig\"}" in after  # flow style kept
    assert "      en: |\n        Some **news**" in after and "      cy: |\n        Newyddion **da**" in after
    loaded = load_issue(issue)
    assert loaded.title.en == "Network news: December" and loaded.title.cy == WELSH["title"]
    assert loaded.sections[0].body.cy == WELSH["sections[0].body"]
    assert loaded.translated["cy"]["sections[0].body"] == fingerprint(loaded.sections[0].body.en)
    assert run("lint", "--parity", str(issue)).exit_code == 0
    nothing = run("translate", "export", str(issue), "--to", "cy", "-o", "again.po")
    assert "nothing to translate" in nothing.output and not (workdir / "again.po").exists()


def test_xliff_round_trip(issue, workdir):
    exported = run("translate", "export", str(issue), "--to", "cy", "-o", "2026-12.cy.xlf")
    assert exported.exit_code == 0, exported.output
    tree = ET.parse(workdir / "2026-12.cy.xlf")
    root = tree.getroot()
    assert (root.tag, root.get("version"), root.get("srcLang"), root.get("trgLang")) == (f"{X}xliff", "2.0", "en", "cy")
    assert root.find(f"{X}file").get("original") == str(issue)
    units = {unit.get("name"): unit for unit in root.iter(f"{X}unit")}
    assert set(units) == set(WELSH)
    assert all(re.fullmatch(r"[A-Za-z_][\w.-]*", unit.get("id")) for unit in units.values())  # NMTOKEN ids
    body = units["sections[0].body"]
    notes = {note.get("category"): note.text for note in body.iter(f"{X}note")}
    assert notes["fingerprint"] == fingerprint(body.find(f"{X}segment/{X}source").text)
    assert body.find(f"{X}segment/{X}source").text.endswith("A second paragraph.\n")

    # The translator fills in all but the sign-off; the tool marks what it finished.
    for name, unit in units.items():
        if name == "sign_off":
            continue
        segment = unit.find(f"{X}segment")
        ET.SubElement(segment, f"{X}target").text = WELSH[name]
        segment.set("state", "translated")
    tree.write(workdir / "2026-12.cy.xlf", encoding="utf-8", xml_declaration=True)

    imported = run("translate", "import", "2026-12.cy.xlf")
    assert imported.exit_code == 1  # merged, then validated: the sign-off still has no Welsh
    assert "Merged 7 Welsh texts" in imported.output
    assert "not translated yet (empty, or marked fuzzy or for review): sign_off" in imported.output
    assert re.search(r"2026-12\.yaml:\d+:\d+: sign_off: missing the Welsh text", imported.output)
    assert "# the best one" in issue.read_text(encoding="utf-8")
    data = yaml.safe_load(issue.read_text(encoding="utf-8"))
    assert data["sections"][1]["links"][0]["title"] == {"en": "Co-production catalogue", "cy": "Catalog cydgynhyrchu"}


def test_lint_says_when_the_english_changed_and_export_offers_it_again(issue, workdir):
    run("translate", "export", str(issue), "--to", "cy", "-o", "cy.po")
    translate_po(workdir / "cy.po", WELSH)
    assert run("translate", "import", "cy.po").exit_code == 0
    assert run("lint", str(issue)).exit_code == 0

    issue.write_text(issue.read_text(encoding="utf-8").replace("A second paragraph.", "A second, longer paragraph."),
                     encoding="utf-8")
    linted = run("lint", str(issue))
    assert linted.exit_code == 1
    assert re.search(r"2026-12\.yaml:\d+:\d+: sections\[0\]\.body\.cy: "
                     r"Welsh out of date: sections\[0\]\.body: the English changed after it was translated", linted.output)
    # re-wrapping the English is not a change
    rewrapped = issue.read_text(encoding="utf-8").replace("Some **news**, with", "Some **news**,\n        with")
    issue.write_text(rewrapped, encoding="utf-8")
    assert linted.output.count("out of date") == 1 and run("lint", str(issue)).output.count("out of date") == 1

    again = run("translate", "export", str(issue), "--to", "cy", "-o", "again.po")
    assert "1 text to translate into Welsh (1 changed since translated, marked for review)" in again.output
    (message,) = [message for message in read_po((workdir / "again.po").open("rb")) if message.id]
    assert message.context == "sections[0].body" and message.fuzzy and message.string == WELSH["sections[0].body"]

    # Still fuzzy (not reviewed): nothing is merged, and the file is not touched.
    before = issue.read_bytes()
    untouched = run("translate", "import", "again.po")
    assert "Merged 0 Welsh texts" in untouched.output and issue.read_bytes() == before
    # Reviewed: the old Welsh still fits, the translator clears `fuzzy`; now it is up to date.
    translate_po(workdir / "again.po", {"sections[0].body": WELSH["sections[0].body"]})
    assert run("translate", "import", "again.po").exit_code == 0
    assert "out of date" not in run("lint", str(issue)).output


def test_welsh_written_by_hand_is_marked_then_watched(workdir, cli_env):
    path = workdir / "bilingual.yaml"
    path.write_text(SAMPLE_BILINGUAL.read_text(encoding="utf-8"), encoding="utf-8")
    assert "nothing to translate" in run("translate", "export", str(path), "--to", "cy", "-o", "x.po").output
    marked = run("translate", "mark", str(path), "--to", "cy")
    assert marked.exit_code == 0 and "texts marked up to date" in marked.output
    assert "# Sample issue in English and Welsh" in path.read_text(encoding="utf-8")
    assert run("lint", str(path)).exit_code == 0
    path.write_text(path.read_text(encoding="utf-8").replace("Worth reading", "Also worth reading"), encoding="utf-8")
    assert "Welsh out of date: sections[4].heading" in run("lint", str(path)).output
    everything = run("translate", "export", str(path), "--to", "cy", "-o", "all.xliff", "--all")
    assert everything.exit_code == 0 and "texts to translate" in everything.output


def test_bad_translation_files_are_refused_plainly(issue, workdir):
    wrong = run("translate", "export", str(issue), "--to", "cy", "-o", "x.txt")
    assert wrong.exit_code == 1 and "name the file .po (gettext) or .xlf / .xliff (XLIFF 2.0)" in wrong.output
    (workdir / "evil.xlf").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xliff/>')
    assert "no DOCTYPE or entities" in run("translate", "import", "evil.xlf").output
    (workdir / "broken.xlf").write_text("<xliff")
    assert "not valid XML" in run("translate", "import", "broken.xlf").output
    (workdir / "other.xlf").write_text('<xliff xmlns="urn:oasis:names:tc:xliff:document:1.2" version="1.2"/>')
    assert "not an XLIFF 2 file" in run("translate", "import", "other.xlf").output

    run("translate", "export", str(issue), "--to", "cy", "-o", "cy.po")
    text = (workdir / "cy.po").read_text(encoding="utf-8")
    (workdir / "moved.po").write_text(text.replace(f"#: {issue}:", "#: issues/elsewhere.yaml:"), encoding="utf-8")
    moved = run("translate", "import", "moved.po")
    assert moved.exit_code == 1 and "give it with --issue PATH" in moved.output
    translate_po(workdir / "moved.po", {"title": WELSH["title"], "sections[7].body": "Dim"})
    (workdir / "moved.po").write_text((workdir / "moved.po").read_text(encoding="utf-8").replace(
        'msgctxt "sections[0].heading"', 'msgctxt "sections[7].body"'), encoding="utf-8")
    merged = run("translate", "import", "moved.po", "--issue", str(issue))
    assert "Merged 1 Welsh text" in merged.output and "skipped: sections[7].body: the issue has no such text" in merged.output


def test_export_does_not_overwrite_a_translators_file(issue, workdir):
    (workdir / "cy.po").write_text("work in progress", encoding="utf-8")
    refused = run("translate", "export", str(issue), "--to", "cy", "-o", "cy.po")
    assert refused.exit_code == 1 and "already exists: import it first" in refused.output
    assert (workdir / "cy.po").read_text(encoding="utf-8") == "work in progress"
    assert run("translate", "export", str(issue), "--to", "cy", "-o", "cy.po", "--force").exit_code == 0
