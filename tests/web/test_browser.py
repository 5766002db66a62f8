"""The pages in headless Chromium, served by uvicorn, with links taken from real emails.

Screenshots at 375 px and 1280 px go to test-artifacts/web/.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from mailer.delivery import sends
from mailer.delivery.engine import deliver
from mailer.store import subscribers
from mailer.store.models import Event, Subscriber, SubscriberStatus
from mailer.store.topics import add_topic, topic_names
from mailer.web.server import server_config
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(settings, engine, smtp_server) -> Iterator:
    """The pages on 127.0.0.1 and a free port, mailing through the test SMTP server; yields their settings."""
    port = free_port()
    live_settings = settings.model_copy(update={
        "base_url": f"http://127.0.0.1:{port}", "smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
        "smtp_security": "none", "languages": ["en", "cy"],
    })
    server = uvicorn.Server(server_config(live_settings, host="127.0.0.1", port=port, engine=engine))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert thread.is_alive(), "uvicorn stopped at start"
    yield live_settings
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []

    def console(message) -> None:  # a CSP violation, a script error...
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def response(answer) -> None:  # a missing stylesheet or icon (pages themselves may answer 400 on purpose)
        if answer.status >= 400 and answer.request.resource_type != "document":
            problems.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert problems == [], problems


def shots(page, name: str) -> None:
    """Screenshots at phone and desktop width; the phone one must not scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        if width == 375:
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
    page.set_viewport_size({"width": 1280, "height": 900})


def _link(message, path: str) -> str:
    """A link to `path` in the HTML part of a received email."""
    html = message.get_body(("html",)).get_content()
    return re.search(rf'href="(http://[^"]+{re.escape(path)}[^"]*)"', html).group(1).replace("&amp;", "&")


def _text_link(message, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(rf"http://\S+{re.escape(path)}\S+", text).group(0)


def _sent_issue(live, db, smtp_server, email: str = "ann@example.org"):
    """A real send of the sample issue to one subscriber; returns the message the SMTP server accepted."""
    add_topic(db, name="news")
    add_topic(db, name="events", description="Events and gatherings")
    subscriber = subscribers.add_subscriber(db, email=email, name="Ann", topics=["news"])
    db.commit()
    send = sends.create_send(db, settings=live, issue_path=ROOT / "issues" / "2026-11-open-letter.yaml")
    report = deliver(live, send.id)
    assert smtp_server.recipients() == [email], report
    return subscriber, smtp_server.messages[-1].message


def test_unsubscribe_from_a_real_email(live, db, smtp_server, page):
    ann, message = _sent_issue(live, db, smtp_server)
    link = _link(message, "/u/")
    assert f"<{link.removesuffix('?lang=en')}>" in message["List-Unsubscribe"]  # the body's link names its language

    page.goto(link)
    assert page.locator("h1").inner_text() == "Unsubscribe"
    shots(page, "unsubscribe")
    db.expire_all()
    assert db.get(Subscriber, ann.id).status == SubscriberStatus.active  # opening the page changed nothing

    button = page.get_by_role("button", name="Unsubscribe")
    button.focus()  # by keyboard: the button takes focus and Enter presses it
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    page.wait_for_selector("text=You are unsubscribed")
    shots(page, "unsubscribed")
    db.expire_all()
    assert db.get(Subscriber, ann.id).status == SubscriberStatus.unsubscribed
    channels = list(db.scalars(select(Event.channel).where(Event.subscriber_id == ann.id, Event.kind == "unsubscribed")))
    assert channels == ["web"]

    page.get_by_role("button", name="Undo: subscribe again").click()
    page.wait_for_selector("text=Welcome back")
    db.expire_all()
    assert db.get(Subscriber, ann.id).status == SubscriberStatus.active


def test_change_preferences_from_a_real_email(live, db, smtp_server, page):
    ann, message = _sent_issue(live, db, smtp_server)
    page.goto(_link(message, "/p/"))
    shots(page, "preferences")
    page.get_by_label("Name").fill("Ann Jones")
    page.get_by_label("Cymraeg").check()
    page.get_by_label("Events and gatherings").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Your changes are saved.")
    shots(page, "preferences-saved")
    db.expire_all()
    ann = db.get(Subscriber, ann.id)
    assert (ann.name, ann.language) == ("Ann Jones", "cy")
    assert topic_names(db, ann.id) == ["events", "news"]


def test_view_in_browser_from_a_real_email(live, db, smtp_server, page):
    _, message = _sent_issue(live, db, smtp_server)
    page.goto(_link(message, "/archive/"))
    assert "All together" in page.content() and "__MAILER_" not in page.content()
    shots(page, "archive-issue")
    page.goto(f"{live.base_url}/archive")
    shots(page, "archive")


def test_subscribe_and_confirm_from_the_received_email(live, db, smtp_server, page):
    add_topic(db, name="events", description="Events and gatherings")
    db.commit()
    page.goto(f"{live.base_url}/subscribe")
    shots(page, "subscribe")
    page.get_by_label("Email address").fill("nia@example.org")
    page.get_by_label("Name (optional)").fill("Nia")
    page.get_by_label("Events and gatherings").check()
    page.get_by_label("Send me").check()
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your email")
    shots(page, "subscribe-sent")

    wait_for(lambda: smtp_server.messages, "the confirmation email")  # it goes out after the page has answered
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["nia@example.org"]
    nia = subscribers.get_by_email(db, email="nia@example.org")
    assert nia.status == SubscriberStatus.pending

    page.goto(_text_link(received.message, "/confirm/"))
    shots(page, "confirm")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("text=You are subscribed")
    shots(page, "confirmed")
    db.expire_all()
    nia = db.get(Subscriber, nia.id)
    assert nia.status == SubscriberStatus.active and topic_names(db, nia.id) == ["events"]


def test_language_switch_and_welsh_form_errors(live, page):
    page.goto(f"{live.base_url}/subscribe")
    page.get_by_role("link", name="Cymraeg").click()
    assert page.locator("html").get_attribute("lang") == "cy"
    page.get_by_role("button", name="Tanysgrifio").click()  # nothing filled in
    page.wait_for_selector("text=Rhowch gyfeiriad e-bost")
    shots(page, "subscribe-errors-cy")


def test_a_reader_who_ticks_nothing_gets_the_next_issue(live, db, smtp_server, page):
    """Issue 11, finding 4: the form said every issue comes to you, but a reader who ticked nothing got none."""
    from click.testing import CliRunner

    from mailer.cli import main
    from mailer.cli.common import settings as cli_settings
    from tests.delivery.helpers import env_for

    add_topic(db, name="news", description="Monthly news of the network", default=True)
    add_topic(db, name="events", description="Events and gatherings")
    add_topic(db, name="load-test", description="Load test", public=False)
    db.commit()
    page.goto(f"{live.base_url}/subscribe")
    assert page.get_by_label("Monthly news of the network").is_checked()  # what everyone gets, shown ticked
    assert not page.get_by_label("Events and gatherings").is_checked()
    assert page.get_by_text("Load test").count() == 0
    page.get_by_label("Email address").fill("ifan@example.org")
    page.get_by_label("Send me").check()  # the consent box; no topic ticked
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your email")
    wait_for(lambda: smtp_server.messages, "the confirmation email")
    (received,) = smtp_server.messages
    page.goto(_text_link(received.message, "/confirm/"))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("text=You are subscribed")

    cli_settings.cache_clear()
    sent = CliRunner().invoke(main, ["send", str(ROOT / "issues" / "2026-11-open-letter.yaml"), "--yes",
                                     "--allow-insecure-links"],  # the pages are on 127.0.0.1 here
                              env=env_for(live), catch_exceptions=False)
    cli_settings.cache_clear()
    assert sent.exit_code == 0, sent.output
    assert smtp_server.recipients()[-1] == "ifan@example.org"
    assert "open letter" in smtp_server.messages[-1].message["Subject"].lower()
