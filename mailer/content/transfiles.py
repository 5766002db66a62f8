"""Translation files, the two formats translation tools open: gettext PO (Babel) and XLIFF 2.0.

Each string carries its field path (PO `msgctxt`, XLIFF unit `name`), the file and line
it comes from, and the fingerprint of its source text (PO `#.` comment, XLIFF note of
category "fingerprint"). A text translated before whose source changed since is written
with its old translation, marked for review (PO `fuzzy`; XLIFF segment state `initial`).
The format is chosen by the file's extension: `.po`, or `.xlf` / `.xliff`.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import PoFileError, read_po, write_po

from mailer.content.translation import Translation, TranslationError, Unit
from mailer.i18n import LANGUAGES

PO_SUFFIXES = (".po",)
XLIFF_SUFFIXES = (".xlf", ".xliff")
MAX_BYTES = 5_000_000
XLIFF = "urn:oasis:names:tc:xliff:document:2.0"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
CHANGED_NOTE = "The source text changed after this was translated: the old translation is given to review."
DONE_STATES = ("translated", "reviewed", "final")
ET.register_namespace("", XLIFF)  # XLIFF is written with its namespace as the default one (<xliff xmlns="...">)


@dataclass(frozen=True)
class TranslationFile:
    issue: Path | None  # the issue file the strings come from, as named when exported
    source: str
    target: str
    translations: list[Translation]


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PO_SUFFIXES:
        return "po"
    if suffix in XLIFF_SUFFIXES:
        return "xliff"
    raise TranslationError(f"{path}: name the file .po (gettext) or .xlf / .xliff (XLIFF 2.0)")


def write_file(path: Path, units: list[Unit], *, issue: Path, source: str, target: str) -> None:
    data = (_po(units, issue, target) if file_format(path) == "po" else _xliff(units, issue, source, target))
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise TranslationError(f"{path}: cannot write it: {exc.strerror}") from None


def read_file(path: Path) -> TranslationFile:
    kind = file_format(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise TranslationError(f"{path}: over {MAX_BYTES:,} bytes; not a translation of one issue")
        data = path.read_bytes()
    except OSError as exc:
        raise TranslationError(f"{path}: cannot read it: {exc.strerror}") from None
    return _read_po(path, data) if kind == "po" else _read_xliff(path, data)


# ---- PO ---------------------------------------------------------------------------------------------


def _po(units: list[Unit], issue: Path, target: str) -> bytes:
    catalog = Catalog(locale=target, project=issue.stem, fuzzy=False,
                      header_comment=f"# Translation of {issue} for `mailer issue translate import`.\n"
                                     "# Each msgctxt is the text's place in the issue; keep it as it is.")
    for unit in units:
        catalog.add(unit.source, string=unit.target or "", context=unit.path, locations=[(str(issue), unit.line)],
                    auto_comments=[f"fingerprint: {unit.fingerprint}"] + ([CHANGED_NOTE] if unit.changed else []),
                    flags=["fuzzy"] if unit.changed else [])
    out = io.BytesIO()
    write_po(out, catalog, width=76, sort_output=False)
    return out.getvalue()


def _read_po(path: Path, data: bytes) -> TranslationFile:
    try:
        catalog = read_po(io.BytesIO(data), abort_invalid=True)
    except (PoFileError, ValueError, UnicodeDecodeError) as exc:
        raise TranslationError(f"{path}: not a valid PO file: {exc}") from None
    target = str(catalog.locale) if catalog.locale else ""
    translations, issue = [], None
    for message in catalog:
        if not message.id:
            continue
        if not message.context:
            raise TranslationError(f"{path}: the string {str(message.id)[:40]!r} has no msgctxt (its place in the issue)")
        issue = issue or next((Path(file) for file, _line in message.locations), None)
        text = message.string if isinstance(message.string, str) else ""
        translations.append(Translation(message.context, str(message.id), text, confirmed=not message.fuzzy))
    return TranslationFile(issue, "", _language(path, target.split("_")[0]), translations)


# ---- XLIFF 2.0 ---------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return f"{{{XLIFF}}}{name}"


def _xliff(units: list[Unit], issue: Path, source: str, target: str) -> bytes:
    root = ET.Element(_q("xliff"), {"version": "2.0", "srcLang": source, "trgLang": target})
    file = ET.SubElement(root, _q("file"), {"id": "f1", "original": str(issue)})
    for number, unit in enumerate(units, start=1):
        # Unit ids are NMTOKENs, which a field path is not: the path goes in `name`.
        element = ET.SubElement(file, _q("unit"), {"id": f"u{number}", "name": unit.path, XML_SPACE: "preserve"})
        notes = ET.SubElement(element, _q("notes"))
        ET.SubElement(notes, _q("note"), {"category": "location"}).text = f"{issue}:{unit.line}"
        ET.SubElement(notes, _q("note"), {"category": "fingerprint"}).text = unit.fingerprint
        if unit.changed:
            ET.SubElement(notes, _q("note"), {"category": "review"}).text = CHANGED_NOTE
        segment = ET.SubElement(element, _q("segment"), {"state": "initial"})
        ET.SubElement(segment, _q("source")).text = unit.source
        if unit.target is not None:
            ET.SubElement(segment, _q("target")).text = unit.target
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)  # typeshed: Any for a named encoding
    return data + b"\n"


def _read_xliff(path: Path, data: bytes) -> TranslationFile:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise TranslationError(f"{path}: XLIFF files have no DOCTYPE or entities; refusing it")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise TranslationError(f"{path}: not valid XML: {exc}") from None
    if root.tag != _q("xliff") or not root.get("version", "").startswith("2."):
        raise TranslationError(f"{path}: not an XLIFF 2 file (expected <xliff version=\"2.0\" xmlns=\"{XLIFF}\">)")
    files = root.findall(_q("file"))
    original = next((file.get("original") for file in files if file.get("original")), None)
    translations = []
    for unit in root.iter(_q("unit")):
        name = unit.get("name")
        if not name:
            raise TranslationError(f"{path}: unit {unit.get('id')!r} has no name (its place in the issue)")
        segments = unit.findall(_q("segment"))
        source = "".join("".join(segment.find(_q("source")).itertext()) for segment in segments  # type: ignore[union-attr]
                         if segment.find(_q("source")) is not None)
        targets = [segment.find(_q("target")) for segment in segments]
        text = "".join("".join(target.itertext()) for target in targets if target is not None)
        states = {segment.get("state", "initial") for segment in segments}
        confirmed = True if states and states <= set(DONE_STATES) else None
        translations.append(Translation(name, source, text, confirmed))
    return TranslationFile(Path(original) if original else None, root.get("srcLang", ""),
                           _language(path, root.get("trgLang", "")), translations)


def _language(path: Path, code: str) -> str:
    if code not in LANGUAGES:
        raise TranslationError(f"{path}: translates into {code or 'no language'!r}; expected {' or '.join(LANGUAGES)}")
    return code
