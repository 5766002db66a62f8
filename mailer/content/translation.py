"""Translating an issue: which texts need it, and merging translations back into the editor's YAML.

Every text of an issue has a field path (`sections[1].body`). When a translation is
imported, the issue records, under `translated:`, a fingerprint of the text it was
translated from, per language and path. A text whose source has a different
fingerprint now was changed after it was translated: `lint` says so, and `export`
offers it again. The YAML is rewritten with ruamel.yaml, which keeps the editor's
comments, key order, quoting and block style; only the new texts and `translated:`
are added.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString, SingleQuotedScalarString

from mailer.content.schema import Issue, Localized, field_path, parse_field_path
from mailer.errors import MailerError, Problem
from mailer.i18n import LANGUAGE_NAMES, other_language

TRANSLATED = "translated"
TRANSLATED_COMMENT = ("Written by `mailer issue translate import` (do not edit): for each language, the texts\n"
                      "translated and a fingerprint of the text each was translated from, so `mailer issue lint`\n"
                      "can tell when it changes.")
# ruamel's indentation settings to try, (mapping, sequence, offset): the one that reproduces the file is kept.
_INDENTS = [(2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0), (4, 2, 0)]


class TranslationError(MailerError):
    """A translation file or an issue that cannot be merged; the message says which and why."""


def fingerprint(text: str) -> str:
    """Short hash of a text, blind to how its lines are wrapped (re-wrapping is not a change of meaning)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Unit:
    """One text to translate: where it is, what it says, and the translation there already (if any)."""

    path: str
    source: str
    target: str | None
    line: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.source)

    @property
    def changed(self) -> bool:
        """Translated before, but the source changed since."""
        return self.target is not None


def texts(issue: Issue) -> Iterable[tuple[tuple[str | int, ...], Localized]]:
    """Every text a translator works on: not addresses."""
    return ((loc, value) for loc, value in issue.localized() if not value.is_address)


def source_text(value: Localized, target: str) -> str | None:
    """The text a translation into `target` is made from: the other language's, or the one for every language."""
    return getattr(value, other_language(target)) or value.common


def to_translate(issue: Issue, target: str, *, everything: bool = False) -> list[Unit]:
    """Texts with no `target` text, or whose source changed after they were translated (all with `everything`)."""
    units = []
    for loc, value in texts(issue):
        source = source_text(value, target)
        if source is None:
            continue
        existing = getattr(value, target)
        if existing is None or everything or is_out_of_date(issue, loc, value, target):
            units.append(Unit(field_path(loc), source, existing, issue.problem(loc, "").line))
    return units


def is_out_of_date(issue: Issue, loc: tuple[str | int, ...], value: Localized, target: str) -> bool:
    recorded = issue.translated.get(target, {}).get(field_path(loc))  # type: ignore[call-overload]
    source = source_text(value, target)
    return recorded is not None and getattr(value, target) is not None and source is not None \
        and recorded != fingerprint(source)


def out_of_date_warnings(issue: Issue) -> list[Problem]:
    """"Welsh out of date: sections[1].body: the English changed after it was translated", at the translation."""
    warnings = []
    for target in issue.translated:
        source = other_language(target)
        for loc, value in texts(issue):
            if is_out_of_date(issue, loc, value, target):
                warnings.append(issue.problem((*loc, target), f"{LANGUAGE_NAMES[target]} out of date: {field_path(loc)}: "
                                                              f"the {LANGUAGE_NAMES[source]} changed after it was translated"))
    return warnings


@dataclass(frozen=True)
class Translation:
    """One string from a translation file: the text the translator saw and what they made of it."""

    path: str
    source: str
    target: str
    # The translator's word: True (PO: not fuzzy; XLIFF: translated, reviewed or final), False (PO: fuzzy),
    # None (XLIFF: initial, the default): then it counts when it differs from the text the issue has.
    confirmed: bool | None


@dataclass
class MergeReport:
    merged: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # not translated yet
    unknown: list[str] = field(default_factory=list)  # no such text in the issue (any more)
    changed_since: list[str] = field(default_factory=list)  # source changed between export and import


def merge(issue_path: Path, target: str, translations: list[Translation]) -> MergeReport:
    """Write the translations into the issue file, keeping its comments and layout, and record their fingerprints."""
    text = _read(issue_path)
    yaml, document = _load(text, issue_path)
    report = MergeReport()
    recorded = _recorded(document, target)
    for translation in translations:
        loc = parse_field_path(translation.path)
        node = _find(document, loc) if loc else None
        if node is None:
            report.unknown.append(translation.path)
            continue
        parent, key = node
        current = parent[key]
        source = current if isinstance(current, str) else current.get(other_language(target))
        if not isinstance(source, str):
            report.unknown.append(translation.path)
            continue
        existing = None if isinstance(current, str) else current.get(target)
        if not translation.target.strip() or translation.confirmed is False \
                or (translation.confirmed is None and translation.target == existing):
            report.left.append(translation.path)
            continue
        _set(parent, key, target, _styled(translation.target, source), other_language(target))
        recorded[translation.path] = fingerprint(translation.source)
        report.merged.append(translation.path)
        if fingerprint(translation.source) != fingerprint(source):
            report.changed_since.append(translation.path)
    if report.merged:  # nothing merged: the file stays exactly as it was
        _prune(document, target, recorded)
        _write(issue_path, _dump(yaml, document))
    return report


def mark_translated(issue: Issue, target: str) -> list[str]:
    """Record every text that has a `target` translation as up to date with its source now; returns the paths."""
    assert issue.path is not None
    yaml, document = _load(_read(issue.path), issue.path)
    recorded = _recorded(document, target)
    paths = []
    for loc, value in texts(issue):
        source = source_text(value, target)
        if getattr(value, target) is not None and source is not None:
            recorded[field_path(loc)] = fingerprint(source)
            paths.append(field_path(loc))
    _prune(document, target, recorded)
    _write(issue.path, _dump(yaml, document))
    return paths


# ---- ruamel.yaml: the editor's file, round trip -------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TranslationError(f"{path}: cannot read the issue: {exc}") from None


def _yaml(indent: tuple[int, int, int]) -> YAML:
    yaml = YAML()  # round trip: comments, order and quoting are kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the editor's lines
    yaml.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return yaml


def _load(text: str, path: Path) -> tuple[YAML, Any]:
    """The document, and a YAML writer set up to reproduce its indentation (the closest of a few styles)."""
    best: tuple[float, YAML, Any] | None = None
    for indent in _INDENTS:
        yaml = _yaml(indent)
        try:
            document = yaml.load(text)
        except YAMLError as exc:
            raise TranslationError(f"{path}: not valid YAML ({exc}); fix it with `mailer issue validate` first") from None
        if not isinstance(document, CommentedMap):
            raise TranslationError(f"{path}: not an issue (expected title:, date:, sections: ...)")
        dumped = _dump(yaml, document)
        if dumped == text:
            return yaml, document
        likeness = difflib.SequenceMatcher(None, dumped, text, autojunk=False).ratio()
        if best is None or likeness > best[0]:
            best = (likeness, yaml, document)
    assert best is not None
    return best[1], best[2]


def _dump(yaml: YAML, document: Any) -> str:
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _find(document: Any, loc: tuple[str | int, ...]) -> tuple[Any, str | int] | None:
    """The container holding the text at `loc`, and its key there."""
    node = document
    for part in loc[:-1]:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    last = loc[-1]
    if isinstance(node, CommentedMap) and last in node and isinstance(node[last], (str, CommentedMap)):
        return node, last
    return None


def _set(parent: Any, key: str | int, target: str, text: str, source_language: str) -> None:
    """Give the text at parent[key] its `target` version, after the source's (a single text becomes a mapping)."""
    current = parent[key]
    if isinstance(current, str):
        mapping = CommentedMap()
        mapping[source_language] = current
        mapping[target] = text
        if parent.fa.flow_style():  # inside {...}: stay on one line
            mapping.fa.set_flow_style()
        parent[key] = mapping
    elif target in current:
        current[target] = text
    else:
        keys = list(current.keys())
        position = keys.index(source_language) + 1 if source_language in keys else len(keys)
        current.insert(position, target, text)


def _styled(text: str, like: str) -> str:
    """The translation written the way its source is: a `|` block for lines, else the same quotes."""
    style: type[str]  # ruamel's styled strings are str, though their constructors say they return Any
    if "\n" in text.strip("\n") or isinstance(like, LiteralScalarString):
        if like.endswith("\n") and not text.endswith("\n"):
            text += "\n"
        style = LiteralScalarString
    else:
        text = text.strip("\n")
        if isinstance(like, DoubleQuotedScalarString):
            style = DoubleQuotedScalarString
        elif isinstance(like, SingleQuotedScalarString):
            style = SingleQuotedScalarString
        else:
            style = str
    return style(text)


def _recorded(document: CommentedMap, target: str) -> CommentedMap:
    """The fingerprints recorded for `target`, created (with its comment, at the end) when missing."""
    if TRANSLATED not in document or not isinstance(document[TRANSLATED], CommentedMap):
        document[TRANSLATED] = CommentedMap()
        document.yaml_set_comment_before_after_key(TRANSLATED, before=TRANSLATED_COMMENT)
    by_language = document[TRANSLATED]
    if not isinstance(by_language.get(target), CommentedMap):
        by_language[target] = CommentedMap()
    recorded: CommentedMap = by_language[target]
    return recorded


def _prune(document: CommentedMap, target: str, recorded: CommentedMap) -> None:
    """Forget fingerprints of texts the issue no longer has."""
    for path in list(recorded):
        loc = parse_field_path(str(path))
        if loc is None or _find(document, loc) is None:
            del recorded[path]


def _write(path: Path, text: str) -> None:
    """Replace the file in one step: a crash leaves the old file or the new one, never half of one."""
    folder = path.parent
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        try:
            os.chmod(temporary, path.stat().st_mode & 0o777)
        except OSError:
            pass
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
