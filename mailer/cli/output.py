"""Everything a command prints goes through here: outside text shown as text, tables that fit.

Names, addresses, titles and diagnostics come from outside (a form, a CSV file, a
bounce). Printed raw, `[/]` crashes rich's markup parser, `[link=...]` hides a
hyperlink, and an ANSI escape or a control character rewrites the terminal. So the
console here never reads markup or emoji codes, and every string it renders has its
control characters shown as escapes (`\\x1b`). Only `styled()` adds colour, to our
own words. Rich itself is imported on first output, so `--help` stays quick.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

# C0 and C1 control characters and DEL, the bidirectional overrides (which reorder
# what the terminal shows) and the Unicode line separators.
_OTHER_UNSAFE = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_OTHER_UNSAFE}]")
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHER_UNSAFE}]")  # keeps tab and newline
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
KB = 1024
MIN_WRAP = 8  # the narrowest a wrapping column gets before a long address wraps too
_consoles: dict[bool, Console] = {}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(value: object) -> str:
    """A value from outside as one printable line: every control character shown as an escape."""
    return _CONTROL.sub(_escape, str(value))


def printable(text: str) -> str:
    """Text for the terminal: control characters shown as escapes, except tabs and line breaks."""
    return _CONTROL_BUT_LINES.sub(_escape, text)


def size(n_bytes: int) -> str:
    """A file or message size, the same way everywhere: `23.7 KB`."""
    return f"{n_bytes / KB:.1f} KB"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 subscriber`, `2 subscribers`."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def get_console(*, err: bool = False) -> Console:
    """The console for standard output (or error), made on first use: importing rich takes a tenth of a second."""
    if err not in _consoles:
        from rich.console import Console

        class PlainConsole(Console):
            """A console that never reads markup, emoji codes or control characters in strings."""

            def render_str(self, text: str, **options: Any) -> Text:
                options.update(markup=False, emoji=False, highlight=False)
                return super().render_str(printable(text), **options)

        _consoles[err] = PlainConsole(stderr=err, markup=False, emoji=False, highlight=False)
    return _consoles[err]


def echo(*parts: object, err: bool = False) -> None:
    """Print one message: strings (ours, with values from outside in them) and `styled()` parts.

    Strings are never read as markup, their control characters are shown as escapes,
    and long lines are not wrapped (a path or a URL stays whole for copying). Plain
    strings go out through click, so a command that prints no table or colour never
    imports rich.
    """
    if all(isinstance(part, str) for part in parts):
        click.echo(printable(" ".join(map(str, parts))), err=err)
    else:
        get_console(err=err).print(*parts, soft_wrap=True)


def styled(text: object, style: str) -> Text:
    """`text` in a style (e.g. "red", "bold"), for echo() and table cells."""
    from rich.text import Text

    return Text(safe(text), style=style)


@cache
def _safe_table() -> type[Table]:
    from rich.table import Table

    class SafeTable(Table):
        """A table whose text cells are values from outside, each shown with `safe()`."""

        def add_row(self, *cells: Any, **options: Any) -> None:
            super().add_row(*(safe(cell) if isinstance(cell, str) else cell for cell in cells), **options)

    return SafeTable


def table(*columns: str, title: str | None = None, wrap: tuple[str, ...] = ()) -> Table:
    """A table that stays readable at 80 columns, each cell one value shown with `safe()`.

    Columns named in `wrap` (names, titles, descriptions) wrap onto more lines when
    space runs out; the others (IDs, addresses, dates, counts, statuses) are never cut.
    """
    from rich import box
    from rich.table import Column

    return _safe_table()(*(Column(name, overflow="fold") if name in wrap else Column(name, no_wrap=True) for name in columns),
                         title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)


def fields(rows: Iterable[tuple[str, str]]) -> Table:
    """Labels and their values in two columns without lines, e.g. one subscriber's details."""
    grid = _safe_table().grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def show(renderable: Any) -> None:
    """Print a table (fitted to the terminal's width) or another rich renderable built here."""
    console = get_console()
    if isinstance(renderable, _safe_table()):
        fit(renderable, console.width)
    console.print(renderable)


def fit(table: Table, width: int) -> None:
    """Give the wrapping columns the room the others leave, so nothing is cut.

    Rich's own layout shrinks every column evenly when space runs short, which cuts
    dates (`2026-12-…`) and breaks short addresses. Here the columns that must stay
    whole keep their width and the wrapping ones share the rest, narrowest needs
    first. Only when that would leave them under `MIN_WRAP` each does the widest
    whole column (a very long address) wrap too, with every character still shown.
    """
    from rich.cells import cell_len

    columns = table.columns
    gaps = table._extra_width + sum(table._get_padding_width(index) for index in range(len(columns)))  # rich's own sums
    natural = [max(cell_len(line) for text in (column.header, *column.cells) for line in str(text).splitlines() or [""])
               for column in columns]
    if sum(natural) + gaps <= width:
        return
    wrapping = [index for index, column in enumerate(columns) if not column.no_wrap]
    whole = [index for index in range(len(columns)) if index not in wrapping]
    room = width - gaps - sum(natural[index] for index in whole)
    # a wrapping column needs its longest word, or MIN_WRAP if that is longer
    wanted = sum(min(MIN_WRAP, max((cell_len(word) for text in (column.header, *column.cells) for word in str(text).split()),
                                   default=1))
                 for column in (columns[index] for index in wrapping))
    if room < wanted and whole:
        widest = max(whole, key=natural.__getitem__)
        columns[widest].no_wrap, columns[widest].overflow = False, "fold"
        columns[widest].width = narrowed = max(MIN_WRAP, natural[widest] - (wanted - room))
        room -= narrowed - natural[widest]
    for done, index in enumerate(sorted(wrapping, key=natural.__getitem__)):
        columns[index].width = share = max(1, min(natural[index], room // (len(wrapping) - done)))
        room -= share
