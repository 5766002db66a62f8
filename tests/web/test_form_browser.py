"""In Chromium: the form printed by `mailer forms snippet`, served from a second local origin, posts to the pages;
accepted from the origin listed in `form_origins`, refused from another. Also the editors' stats chart, whose
screenshot is docs/stats-chart.png."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvicorn

from mailer.store import subscribers
from mailer.store.models import SubscriberStatus, utcnow
from mailer.store.topics import add_topic, topic_names
from mailer.web.server import server_config
from mailer.web.snippet import form_snippet
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import wait_for
from tests.web.helpers import link_in, outbox
from tests.web.test_browser import ARTIFACTS, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def pages_port() -> int:
    return free_port()


@dataclass
class Site:
    folder: Path
    listed: str  # the origin in form_origins
    other: str  # an origin that is not


@pytest.fixture
def site(workdir: Path) -> Iterator[Site]:
    """A folder served as a web site, twice: http://localhost:<port> (listed) and http://127.0.0.1:<port> (not)."""
    folder = workdir / "site"
    folder.mkdir()
    servers = []
    for _ in range(2):
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield Site(folder, f"http://localhost:{servers[0].server_port}", f"http://127.0.0.1:{servers[1].server_port}")
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live(settings, engine, site, pages_port) -> Iterator:
    """The pages on 127.0.0.1, taking forms from the listed site only; emails go to the outbox."""
    live_settings = settings.model_copy(update={
        "base_url": f"http://127.0.0.1:{pages_port}", "languages": ["en", "cy"], "form_origins": [site.listed]})
    server = uvicorn.Server(server_config(live_settings, host="127.0.0.1", port=pages_port, engine=engine))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert thread.is_alive(), "uvicorn stopped at start"
    yield live_settings
    server.should_exit = True
    thread.join(timeout=10)


def test_a_form_on_the_listed_site_signs_a_reader_up_and_another_site_is_refused(live, site, db, page):  # noqa: F811
    add_topic(db, name="news")
    db.commit()
    html = form_snippet(live, language="cy", topics=["news"])
    (site.folder / "index.html").write_text(f'<!doctype html><html lang="cy"><meta charset="utf-8"><title>Ein gwefan</title>'
                                     f"<body><h1>Ein gwefan</h1>{html}</body></html>", encoding="utf-8")

    page.goto(f"{site.listed}/")
    page.get_by_label("Cyfeiriad e-bost").fill("nia@example.org")
    page.get_by_label("Enw (dewisol)").fill("Nia")
    page.get_by_label(re.compile("Anfonwch")).check()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "website-form.png"), full_page=True)
    page.get_by_role("button", name="Tanysgrifio").click()
    page.wait_for_url(f"{live.base_url}/subscribe?lang=cy")
    assert page.locator("h1").inner_text() == "Edrychwch ar eich e-bost"
    page.screenshot(path=str(ARTIFACTS / "website-form-sent.png"), full_page=True)
    wait_for(lambda: outbox(live), "the confirmation email")
    nia = subscribers.get_by_email(db, email="nia@example.org")
    assert nia.status == SubscriberStatus.pending and subscribers.open_request(db, subscriber_id=nia.id).topics == "news"

    page.goto(link_in(outbox(live)[0], "/confirm/"))  # double opt-in is still the guard
    page.get_by_role("button").click()
    page.wait_for_selector("text=Diolch")
    db.expire_all()
    assert subscribers.get_by_email(db, email="nia@example.org").status == SubscriberStatus.active
    assert topic_names(db, nia.id) == ["news"]

    page.goto(f"{site.other}/")  # the same form, on a site not in form_origins
    page.get_by_label("Cyfeiriad e-bost").fill("owen@example.org")
    page.get_by_label(re.compile("Anfonwch")).check()
    with page.expect_response(f"{live.base_url}/subscribe?lang=cy") as answer:
        page.get_by_role("button", name="Tanysgrifio").click()
    assert answer.value.status == 400
    assert page.locator(".notice.error").count() == 1  # "...did not come from this page"
    assert subscribers.get_by_email(db, email="owen@example.org") is None
    assert len(outbox(live)) == 1


# Joined, left, bounces, complaints in each of the last twelve months, oldest first: a year of a small list.
YEAR = [(34, 3, 2, 0), (21, 4, 1, 0), (18, 2, 3, 1), (25, 5, 1, 0), (12, 2, 0, 0), (9, 3, 2, 0),
        (15, 1, 1, 0), (40, 6, 4, 1), (28, 3, 2, 0), (22, 2, 1, 0), (31, 4, 3, 0), (26, 3, 1, 1)]


def seed_year(db, settings, now) -> None:
    """The YEAR through the store's own services, each month at its own time."""
    import time_machine

    from mailer.store.models import BounceKind
    from tests.fixtures.history import report_bounce

    for back, (joined, left, bounces, complaints) in zip(range(11, -1, -1), YEAR, strict=True):
        year, month = divmod(now.year * 12 + now.month - 1 - back, 12)
        with time_machine.travel(datetime(year, month + 1, 1, 9, 0, tzinfo=UTC), tick=False):
            people = [subscribers.add_subscriber(db, email=f"r{back}.{n}@example.org") for n in range(joined)]
            for person in people[:left]:
                subscribers.unsubscribe(db, subscriber_id=person.id, channel="one-click")
            failures = [(BounceKind.permanent, p) for p in people[left:left + bounces]]
            failures += [(BounceKind.complaint, p) for p in people[left + bounces:left + bounces + complaints]]
            for n, (kind, person) in enumerate(failures):
                report_bounce(db, settings, person, kind, f"<{back}.{n}@mx.example>")
            db.commit()


def test_the_stats_chart_for_editors(live, db, page):  # noqa: F811
    seed_year(db, live, utcnow())
    page.set_viewport_size({"width": 1000, "height": 900})
    page.goto(f"{live.base_url}/admin/stats")  # from this machine, no token set: allowed
    assert page.locator("h1").inner_text() == "The list, month by month"
    wait_for(lambda: page.evaluate("document.querySelector('img.chart').naturalWidth") > 0, "the chart to load")
    rows = page.locator("table.figures tbody tr")
    assert rows.count() == 12
    assert rows.nth(11).locator("td").all_inner_texts() == [str(n) for n in YEAR[-1]]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stats-page.png"), full_page=True)
    page.set_viewport_size({"width": 640, "height": 380})
    page.goto(f"{live.base_url}/admin/stats.svg")
    page.screenshot(path=str(ARTIFACTS / "stats-chart.png"))
