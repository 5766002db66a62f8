"""/admin/stats: the SVG chart for editors, behind the token in the settings, or on this machine only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.store.subscribers import unsubscribe
from mailer.web import create_app


@pytest.fixture
def history(db, person):
    for name in ("ann", "bryn", "cadi"):
        person(f"{name}@example.org")
    unsubscribe(db, subscriber_id=person("dai@example.org").id, channel="web")
    db.commit()


def visitor(settings, engine, host: str, **changes) -> TestClient:
    app = create_app(settings.model_copy(update=changes), engine=engine)
    return TestClient(app, base_url=settings.base_url, client=(host, 50000))


def test_with_a_token_only_the_token_opens_the_chart(settings, engine, history):
    editor = visitor(settings, engine, "203.0.113.9", admin_token="tr0mb0ne-and-harp-0123")
    for path in ("/admin/stats", "/admin/stats.svg", "/admin/stats?token=wrong", "/admin/stats.svg?token="):
        assert editor.get(path).status_code == 404, path
    page = editor.get("/admin/stats?token=tr0mb0ne-and-harp-0123")
    assert page.status_code == 200
    assert "/admin/stats.svg?months=12&amp;lang=en&amp;token=tr0mb0ne-and-harp-0123" in page.text
    rows = [line for line in page.text.splitlines() if line.startswith("  <tr><th scope=\"row\">")]
    assert len(rows) == 12 and "<td>4</td><td>1</td><td>0</td><td>0</td>" in rows[-1]  # joined 4, left 1
    chart = editor.get("/admin/stats.svg?token=tr0mb0ne-and-harp-0123&lang=cy")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in chart.text and "Ymunodd" in chart.text and "Gadawodd" in chart.text
    assert "<script" not in chart.text and "script-src" not in chart.headers["content-security-policy"]


def test_without_a_token_only_this_machine_sees_it(settings, engine, history):
    assert visitor(settings, engine, "127.0.0.1").get("/admin/stats").status_code == 200
    assert visitor(settings, engine, "::1").get("/admin/stats.svg").status_code == 200
    assert visitor(settings, engine, "203.0.113.9").get("/admin/stats").status_code == 404
    # A proxy on this machine makes every visitor look local: anything it forwarded is refused.
    proxied = visitor(settings, engine, "127.0.0.1").get("/admin/stats", headers={"x-forwarded-for": "203.0.113.9"})
    assert proxied.status_code == 404
    assert visitor(settings, engine, "127.0.0.1").get("/admin/stats?months=0").status_code in (400, 404)


def test_a_stranger_cannot_tell_the_page_is_there(settings, engine, history):
    """Bad parameters are checked after who is asking: a stranger's 400 would show the route exists."""
    stranger = visitor(settings, engine, "203.0.113.9")
    for path in ("/admin/stats?months=0", "/admin/stats.svg?months=abc"):
        assert stranger.get(path).status_code == 404, path
    editor = visitor(settings, engine, "203.0.113.9", admin_token="tr0mb0ne-and-harp-0123")
    assert editor.get("/admin/stats?months=0").status_code == 404
    assert editor.get("/admin/stats?months=0&token=tr0mb0ne-and-harp-0123").status_code == 400


def test_config_show_masks_the_token(settings):
    from tests.web.helpers import run_cli

    shown = run_cli(settings.model_copy(update={"admin_token": "tr0mb0ne-and-harp-0123"}), "config", "show")
    assert shown.exit_code == 0, shown.output
    assert "admin_token" in shown.output and "tr0mb0ne" not in shown.output
