"""`mailer stats`: the list over time, as a small chart in the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mailer.cli import output
from mailer.cli.common import command, session

if TYPE_CHECKING:
    from mailer.store.stats import Month

COLOURS = {"joined": "green", "left": "yellow", "bounces": "red", "complaints": "magenta"}


@command(examples=["mailer stats", "mailer stats --months 24"])
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True, metavar="N",
              help="How many months, ending with this one.")
def stats(months: int) -> None:
    """Joins, leaves, bounces and complaints per month (UTC), as a small chart.

    Joins: readers who became active (confirmed, added, imported). Leaves: unsubscribes.
    Bounces: bounce reports about messages of ours, hard and soft. Complaints: spam
    reports. Counts only. The same as a picture: base_url/admin/stats (docs/stats.md).
    """
    from mailer.store.stats import history

    with session() as db:
        figures = history(db, months=months)
    output.show(chart(figures, width=output.get_console().width))


def chart(figures: list[Month], *, width: int = 80) -> Any:
    """One row per month; per series its number and a bar, every bar on one scale, fitting in `width` columns."""
    from rich.bar import Bar
    from rich.table import Table

    from mailer.store.stats import SERIES

    peak = max((getattr(month, series) for month in figures for series in SERIES), default=0) or 1
    digits = len(str(peak))
    bar = max(3, (width - 9 - len(SERIES) * (digits + 4)) // len(SERIES))
    table = Table("month", *SERIES, title="The list, month by month (UTC)", caption="bars on one scale; counts only",
                  show_edge=False, pad_edge=False)
    for month in figures:
        cells: list[Any] = [month.month]
        for series in SERIES:
            count = getattr(month, series)
            cell = Table.grid(padding=(0, 1))
            cell.add_row(output.styled(f"{count:>{digits}}", COLOURS[series]),
                         Bar(peak, 0, count, width=bar, color=COLOURS[series]))
            cells.append(cell)
        table.add_row(*cells)
    return table
