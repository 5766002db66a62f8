"""/admin/stats: the list month by month as an SVG chart, for editors only.

Behind `admin_token` when it is set (open `/admin/stats?token=...`). Without a token
the page answers only on this machine: a request from a loopback address that no
proxy forwarded (a proxy on the same machine would make every visitor look local).
Anyone else gets "not found". The chart shows counts per month and nothing about
any person.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from mailer.store.models import utcnow
from mailer.store.stats import SERIES, Month, history
from mailer.web.context import DB, web

Months = Annotated[int, Query(ge=1, le=120)]
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
# The chart is pygal's SVG with its own inline style; its tooltip script is taken out (the page shows it as an image).
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
CHART_SIZE = (640, 380)  # as drawn: the page shows it at its column's width
COLOURS = ("#2e7d32", "#f9a825", "#c62828", "#6a1b9a")  # joined, left, bounces, complaints: as `mailer stats`


def series_names(_: Callable[..., str]) -> dict[str, str]:
    """The series as the page's language names them."""
    return {"joined": _("Joined"), "left": _("Left"), "bounces": _("Bounces"), "complaints": _("Complaints")}


def _editor(request: Request) -> None:
    """Let the request through only with the token, or (no token set) from this machine directly."""
    settings = web(request).settings
    if settings.admin_token:
        given = request.query_params.get("token", "")
        if hmac.compare_digest(given.encode(), settings.admin_token.encode()):
            return
    elif _loopback(request.client.host if request.client else "") and not any(
            name in request.headers for name in FORWARDING_HEADERS):
        return
    raise HTTPException(404)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Who is asking is checked before the parameters: a stranger's 400 would show the pages exist.
router = APIRouter(dependencies=[Depends(_editor)])


@router.get("/admin/stats")
def page(request: Request, db: DB, months: Months = 12) -> Response:
    ctx = web(request)
    language = ctx.pages.language(request)
    figures = history(db, months=months, now=utcnow())
    query = {"months": months, "lang": language, **({"token": ctx.settings.admin_token} if ctx.settings.admin_token else {})}
    context = {"figures": figures, "series": SERIES, "names": series_names(ctx.pages.gettext(language)),
               "chart_url": f"/admin/stats.svg?{urlencode(query)}", "months": months}
    return ctx.pages.render(request, language, "admin_stats.html", context)


@router.get("/admin/stats.svg")
def chart(request: Request, db: DB, months: Months = 12) -> Response:
    ctx = web(request)
    _ = ctx.pages.gettext(ctx.pages.language(request))
    svg = chart_svg(history(db, months=months, now=utcnow()), series_names(_), title=_("The list, month by month"))
    return Response(svg, media_type="image/svg+xml", headers={"content-security-policy": SVG_CSP})


def chart_svg(figures: list[Month], names: dict[str, str], *, title: str) -> str:
    """A bar chart of every series per month, in the colours `mailer stats` uses."""
    import pygal  # 0.4 s to import: only when a chart is drawn, not at every start of the pages
    from pygal.style import Style

    style = Style(colors=COLOURS, background="white", plot_background="white", font_family="DejaVu Sans, sans-serif",
                  title_font_size=18, legend_font_size=15, label_font_size=13, major_label_font_size=13)
    bars = pygal.Bar(width=CHART_SIZE[0], height=CHART_SIZE[1], style=style, js=[], title=title,
                     legend_at_bottom=True, legend_at_bottom_columns=len(SERIES), x_label_rotation=30,
                     show_minor_x_labels=True, min_scale=1, order_min=0)
    bars.x_labels = [month.month for month in figures]
    for series in SERIES:
        bars.add(names[series], [getattr(month, series) for month in figures])
    return _SCRIPT.sub("", bars.render(is_unicode=True))
