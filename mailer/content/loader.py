"""Reading an issue file: safe YAML, every problem located at file:line:column.

YAML is composed into nodes first (they carry their position), checked against
size limits so a file built to explode (a megabyte of text, aliases expanding into
billions of nodes) is refused before it costs memory, and only then turned into
Python data and validated. Each pydantic error is mapped back to its node.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mailer.content.schema import FIELD_NAMES, Issue, field_path
from mailer.errors import IssueError, Problem
from mailer.i18n import LANGUAGES

MAX_BYTES = 1_000_000
MAX_NODES = 20_000  # after expanding aliases; a long issue has a few hundred
MAX_ALIASES = 100
MAX_DEPTH = 50

Loc = tuple[str | int, ...]


class _TooBig(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None = None):
        super().__init__(message)
        self.mark = mark


class _Composer(yaml.SafeLoader):
    """The safe loader, counting aliases and depth while it builds the node tree."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name); refusing the file", self._next_mark())
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep; refusing the file", self._next_mark())
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _next_mark(self) -> yaml.Mark | None:
        """Where the next event starts (a pure-Python loader's mark: never the C parser's kind)."""
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # types-PyYAML leaves it untyped
        mark = event.start_mark
        return mark if isinstance(mark, yaml.Mark) else None


def load_issue(path: Path, *, every_language: bool = True) -> Issue:
    """The validated issue in `path`; `IssueError` with every problem found otherwise.

    `every_language=False` lets texts miss a language the issue declares: what a translator starts from.
    """
    path = Path(path)
    name = str(path)
    root = _compose(path)
    data = _construct(root, name)
    locator = Locator(name, root)
    try:
        # Checking no language lets texts miss one (export takes an issue whose Welsh is still to come).
        languages = declared_languages(data) if every_language else []
        issue = Issue.model_validate(data, context={"languages": languages})
    except ValidationError as exc:
        raise IssueError(sorted(locator.problems(exc), key=_position)) from None
    issue._path = path
    issue._locator = locator
    return issue


def _compose(path: Path) -> yaml.Node:
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise IssueError([Problem(name, 1, 1, "", f"file is {size:,} bytes; an issue may be at most {MAX_BYTES:,}")])
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IssueError([Problem(name, 1, 1, "", f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")]) from None
    except OSError as exc:
        raise IssueError([Problem(name, 1, 1, "", f"cannot read the file: {exc.strerror}")]) from None
    composer = _Composer(text)
    try:
        root = composer.get_single_node()
    except _TooBig as exc:
        raise IssueError([_at(name, exc.mark, str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        raise IssueError([_yaml_problem(name, exc, "YAML syntax error")]) from None
    except yaml.YAMLError as exc:
        raise IssueError([Problem(name, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        composer.dispose()
    if not isinstance(root, yaml.MappingNode):
        mark = root.start_mark if root is not None else None
        raise IssueError([_at(name, mark, "expected the issue's fields (title:, date:, sections: ...)")])
    _check_size(root, name)
    return root


def _check_size(root: yaml.Node, name: str) -> None:
    """Refuse trees that aliases make recursive or huge, and duplicate keys; counts shared nodes once per use."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    problems: list[Problem] = []

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise IssueError([_at(name, node.start_mark, "an alias refers to itself; refusing the file")])
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    first = seen.setdefault(key_node.value, key_node)
                    if first is not key_node:
                        problems.append(_at(name, key_node.start_mark, f"given twice (first on line {first.start_mark.line + 1})",
                                            field=str(key_node.value)))
                total += size(key_node) + size(value_node)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if size(root) > MAX_NODES:
        raise IssueError([Problem(name, 1, 1, "", f"more than {MAX_NODES:,} values once aliases are expanded; refusing the file")])
    if problems:
        raise IssueError(problems)


class _Constructor(yaml.SafeLoader):
    """Safe construction, but an impossible date (2026-13-01) stays text for pydantic to locate."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def _construct(root: yaml.Node, name: str) -> Any:
    constructor = _Constructor("")
    try:
        return constructor.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise IssueError([_yaml_problem(name, exc, "YAML error")]) from None
    except (ValueError, TypeError) as exc:
        raise IssueError([Problem(name, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        constructor.dispose()


def _at(name: str, mark: yaml.Mark | None, message: str, field: str = "") -> Problem:
    """A problem at a YAML position (marks count from 0), or at the top of the file when there is none."""
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Problem(name, line, column, field, message)


def _yaml_problem(name: str, exc: yaml.MarkedYAMLError, what: str) -> Problem:
    """Where PyYAML noticed the problem, and where what it was reading began: an unclosed quote or
    bracket is only noticed at the end of the file, so its start is what the editor needs."""
    mark = exc.problem_mark or exc.context_mark
    message = f"{what}: {exc.problem or exc.context}"
    start = exc.context_mark
    if exc.problem and exc.context and start and mark and start.line != mark.line:
        message += f" ({exc.context} that begins on line {start.line + 1}, column {start.column + 1})"
    if "'\\t'" in message:
        message += " (YAML indents with spaces, not tabs)"
    if exc.problem == "mapping values are not allowed here":
        message += ' (a text containing ": " needs quotes: title: "Network news: December")'
    return _at(name, mark, message)


class Locator:
    """Maps a field path (pydantic's `loc`) to the line and column of its YAML node."""

    def __init__(self, file: str, root: yaml.Node):
        self.file = file
        self.root = root

    def node(self, loc: Loc, key: bool = False) -> tuple[yaml.Node, bool]:
        """The deepest node on the path (the key's node if `key`), and whether the whole path was found."""
        node = self.root
        for depth, part in enumerate(loc, start=1):
            child = self._child(node, part, key=key and depth == len(loc))
            if child is None:
                return node, False
            node = child
        return node, True

    @staticmethod
    def _child(node: yaml.Node, part: str | int, key: bool = False) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
            for key_node, value_node in pairs:
                if key_node.value == part:
                    return key_node if key else value_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            items: list[yaml.Node] = node.value
            return items[part]
        return None

    def problem(self, loc: Loc, message: str, line_offset: int = 0, key: bool = False) -> Problem:
        node, _ = self.node(loc, key)
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            # A block's text starts on the line after its `|`; Markdown lines count from there.
            line = line + 1 + line_offset
            column = _indent(node.start_mark.buffer, line) + 1
        else:
            line += line_offset
        return Problem(self.file, line, column, field_path(loc), message)

    def problems(self, exc: ValidationError) -> list[Problem]:
        found: list[Problem] = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if error["type"] == "mailer":
                for language, offset, message in error["ctx"]["problems"]:
                    found.append(self.problem((*loc, language) if language else loc, message, offset))
                continue
            found.append(self.problem(loc, _message(error), key=error["type"] == "extra_forbidden"))
        return _unique(found)


def _message(error: ErrorDetails) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), FIELD_NAMES, n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind.startswith(("date_", "datetime_")):
        return f"not a valid date{' and time' if kind.startswith('datetime') else ''}: write it like 2026-12-01{' 10:00' if kind.startswith('datetime') else ''}"
    if kind == "string_pattern_mismatch" and loc and loc[0] == "topics":
        return "topic names are lower-case letters, digits, - and _"
    return str(error["msg"]).removeprefix("Value error, ")


def declared_languages(data: Any) -> list[str]:
    """The languages the file declares (the default when it declares none), for checking every text in one pass;
    a wrong `languages:` is reported by validation, and only its known languages are checked."""
    declared = data.get("languages", ["en"]) if isinstance(data, dict) else ["en"]
    return list(dict.fromkeys(language for language in declared if language in LANGUAGES)) if isinstance(declared, list) else []


def _indent(buffer: str | None, line: int) -> int:
    """Column of the first character on `line` (1-based) of the YAML text."""
    if not buffer:
        return 0
    lines = buffer.split("\n", line)
    text = lines[line - 1] if len(lines) >= line else ""
    return len(text) - len(text.lstrip(" "))


def _position(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
