"""`mailer stats`: the list over time, as a small chart in the terminal."""

from __future__ import annotations

import click
from rich.bar import Bar
from rich.table import Table

from mailer.cli.common import console, session
from mailer.store.stats import SERIES, Month, history

COLOURS = {"joined": "green", "left": "yellow", "bounces": "red", "complaints": "magenta"}


@click.command()
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True,
              help="How many months, ending with this one.")
def stats(months: int) -> None:
    """Joins, leaves, bounces and complaints per month (UTC), as a small chart.

    Joins: readers who became active (confirmed, added, imported). Leaves: unsubscribes.
    Bounces: bounce reports, hard and soft. Complaints: spam reports. Counts only.
    The same as a picture: base_url/admin/stats (see docs/stats.md).

    Example: mailer stats --months 24
    """
    with session() as db:
        figures = history(db, months=months)
    console.print(chart(figures, width=console.width))


def chart(figures: list[Month], *, width: int = 80) -> Table:
    """One row per month; per series its number and a bar, every bar on one scale, fitting in `width` columns."""
    peak = max((getattr(month, series) for month in figures for series in SERIES), default=0) or 1
    digits = len(str(peak))
    bar = max(3, (width - 9 - len(SERIES) * (digits + 4)) // len(SERIES))
    table = Table("month", *SERIES, title="The list, month by month (UTC)", caption="bars on one scale; counts only",
                  show_edge=False, pad_edge=False)
    for month in figures:
        cells: list[object] = [month.month]
        for series in SERIES:
            count = getattr(month, series)
            cell = Table.grid(padding=(0, 1))
            cell.add_row(f"[{COLOURS[series]}]{count:>{digits}}[/]", Bar(peak, 0, count, width=bar, color=COLOURS[series]))
            cells.append(cell)
        table.add_row(*cells)
    return table
