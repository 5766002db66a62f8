"""The attacks of issue 13, each reproduced: what a stranger, a subscriber or a client could make the pages do.

One section per finding (numbers as in the issue), so the next reviewer sees what is covered:
1 mailing any address from the preferences page; 2 the change-of-address link; 4 international
addresses in notices; 5 getting round the subscribe limits; 6 log injection; 7 links and redirects
to other sites, caching; 8 HEAD; 10 file permissions; 11 limits of the server itself; 12 the
preferences link on a used confirmation link; and sends with links nobody can use.
(3 is issue 15's terminal output; 9 is issue 16b's archive.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import stat
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import select

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.notices import build_notice
from mailer.errors import SendError
from mailer.publiclinks import base_url_problem
from mailer.store import subscribers
from mailer.store.db import make_engine, upgrade
from mailer.store.models import Send, SubscriberStatus
from mailer.store.topics import add_topic
from mailer.tokens import confirm_url, preferences_url, unsubscribe_url
from mailer.web import create_app
from mailer.web.ratelimit import EMAILS_PER_DOMAIN, PageLimits, mailbox_key
from mailer.web.security import MAX_HEADER_BYTES, SecurityMiddleware
from mailer.web.server import CONCURRENCY, server_config
from tests.delivery.helpers import SAMPLE_ISSUE, env_for
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import wait_for
from tests.web.helpers import form_action, form_token, fresh, link_in, outbox, same_origin

ROOT = Path(__file__).resolve().parents[2]


def client_at(app, settings: Settings, ip: str) -> TestClient:
    """Requests as they reach the app from the connection `ip` (a reader, or a proxy in front of them)."""
    return TestClient(app, base_url=settings.base_url, follow_redirects=False, client=(ip, 40000))


def ask_for_address(client: TestClient, settings: Settings, subscriber, email: str):
    """Post the preferences form of `subscriber` with a new address, as their browser would."""
    page = client.get(preferences_url(settings, subscriber.id)).text
    return client.post(form_action(page), headers=same_origin(settings),
                       data={"csrf": form_token(page), "name": subscriber.name, "email": email})


def subscribe(client: TestClient | httpx.Client, settings: Settings, email: str, headers: dict[str, str] | None = None):
    page = client.get("/subscribe").text
    return client.post(form_action(page), headers={**same_origin(settings), **(headers or {})},
                       data={"csrf": form_token(page), "email": email, "consent": "yes"})


def press(client: TestClient, settings: Settings, link: str):
    """Open a link from an email and press the one button of its page."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    return client.post(form_action(page.text), data={"csrf": form_token(page.text)}, headers=same_origin(settings))


def sent_to(settings: Settings, address: str) -> list:
    return [message for message in outbox(settings) if message["To"] == address]


# --- 1. The preferences page mails any address, without limit ------------------------------------

def test_one_preferences_link_cannot_mail_address_after_address(app, settings, person):
    mallory = person("mallory@example.net")
    client = client_at(app, settings, "203.0.113.66")
    answers = [ask_for_address(client, settings, mallory, f"victim{n}@example.org") for n in range(8)]
    assert [answer.status_code for answer in answers] == [200] * 3 + [429] * 5
    assert "Too many address changes were asked for" in answers[-1].text
    assert len(outbox(settings)) == 3  # per subscriber: 3 a day


def test_many_preferences_links_cannot_flood_one_address(app, settings, person):
    for n in range(6):  # six subscriptions of the attacker's own, each from its own address
        own = person(f"mallory{n}@example.net")
        ask_for_address(client_at(app, settings, f"203.0.113.{n}"), settings, own, "victim@example.org")
    assert len(sent_to(settings, "victim@example.org")) == 3  # per recipient mailbox: 3 a day


def test_one_client_cannot_use_many_preferences_links(app, settings, person):
    client = client_at(app, settings, "203.0.113.77")
    answers = [ask_for_address(client, settings, person(f"m{n}@example.net"), f"v{n}@example.org")
               for n in range(12)]
    assert [answer.status_code for answer in answers] == [200] * 10 + [429] * 2  # per client: 10 an hour
    assert len(outbox(settings)) == 10


def test_nothing_new_is_sent_while_a_link_to_that_address_waits(client, settings, person):
    ann = person()
    first = ask_for_address(client, settings, ann, "ann.new@example.org")
    again = ask_for_address(client, settings, ann, "Ann.New@example.org")
    assert "We have sent a link to ann.new@example.org" in first.text
    assert again.status_code == 200 and "We have already sent a link to" in again.text
    assert len(outbox(settings)) == 1


# --- 2. Changing the address: the old one is told, and the link works once ------------------------

def test_the_old_address_is_told_and_can_undo_the_change_once(client, settings, db, person):
    ann = person()
    ask_for_address(client, settings, ann, "new@example.org")
    change = link_in(sent_to(settings, "new@example.org")[0], "/email/")
    assert press(client, settings, change).status_code == 200
    assert fresh(db, ann).email == "new@example.org"

    (notice,) = sent_to(settings, "ann@example.org")
    assert "has changed" in notice["Subject"] and "new@example.org" in notice.get_content()
    undo = link_in(notice, "/email/")
    assert undo.endswith("/undo")
    assert client.get(change).status_code == 400  # used once: dead

    page = client.get(undo)
    assert f"Send {settings.list_name} to ann@example.org again instead of new@example.org?" in page.text
    assert press(client, settings, undo).status_code == 200
    assert fresh(db, ann).email == "ann@example.org"
    assert client.get(undo).status_code == 400  # the undo works once too
    assert client.get(change).status_code == 400  # and the undone change cannot be made again


def test_every_waiting_change_link_dies_when_the_address_changes(app, settings, db, person):
    ann = person()
    client = client_at(app, settings, "203.0.113.8")
    ask_for_address(client, settings, ann, "one@example.org")
    ask_for_address(client, settings, ann, "two@example.org")
    to_one = link_in(sent_to(settings, "one@example.org")[0], "/email/")
    to_two = link_in(sent_to(settings, "two@example.org")[0], "/email/")
    press(client, settings, to_one)
    assert client.get(to_two).status_code == 400
    assert fresh(db, ann).email == "one@example.org"


def test_a_second_change_cannot_take_the_way_back_from_the_old_address(client, settings, db, person):
    """Holding a preferences link, move the subscription to one's own address, then on to another: the second
    change would make the owner's undo link stale and send the next undo link to the attacker. While the
    first change can be undone, the page changes the address no further."""
    ann = person()
    ask_for_address(client, settings, ann, "mallory1@example.net")
    press(client, settings, link_in(sent_to(settings, "mallory1@example.net")[0], "/email/"))
    undo = link_in(sent_to(settings, "ann@example.org")[0], "/email/")

    again = ask_for_address(client, settings, ann, "mallory2@example.net")
    assert again.status_code == 409 and "your old address can still take that change back" in again.text
    assert sent_to(settings, "mallory2@example.net") == []
    assert press(client, settings, undo).status_code == 200
    assert fresh(db, ann).email == "ann@example.org"


# --- 4. International addresses in notices -----------------------------------------------------

@pytest.fixture
def smtp_app(settings, engine, smtp_server):
    smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                       "smtp_security": "none"})
    return create_app(smtp, engine=engine)


def test_a_notice_to_an_international_domain_goes_out_over_smtp(smtp_app, settings, db, smtp_server):
    client = client_at(smtp_app, settings, "203.0.113.9")
    assert "Check your email" in subscribe(client, settings, "idn2@bücher.example").text
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["idn2@xn--bcher-kva.example"]
    to_line = re.search(rb"^To: (.*?)\r?$", received.data, flags=re.M).group(1)
    assert to_line.strip() == b"idn2@xn--bcher-kva.example"  # never an encoded word inside an address
    link = link_in(received.message, "/confirm/")
    assert press(client, settings, link).status_code == 200
    db.expire_all()
    assert subscribers.get_by_email(db, email="idn2@bücher.example").status == SubscriberStatus.active


def test_a_local_part_that_needs_smtputf8_is_refused_on_the_forms(smtp_app, settings, db, smtp_server, person):
    client = client_at(smtp_app, settings, "203.0.113.10")
    refused = subscribe(client, settings, "ñoño@example.org")
    assert refused.status_code == 400 and "letters such as é or ü before the @" in refused.text
    ann = person()
    assert ask_for_address(client, settings, ann, "siân@example.org").status_code == 400
    assert smtp_server.messages == [] and subscribers.get_by_email(db, email="ñoño@example.org") is None


def test_notices_hold_only_addresses_the_wire_can_carry(settings):
    message = build_notice(settings, to="Siân <idn2@bücher.example>", subject="Croeso", text="x")
    to_line = re.search(rb"^To: (.*?)\r?$", message.as_bytes(), flags=re.M).group(1)
    assert to_line.endswith(b"<idn2@xn--bcher-kva.example>") and b"=?" not in to_line.split(b"<")[1]
    with pytest.raises(SendError, match="ñoño@example.org"):
        build_notice(settings, to="ñoño@example.org", subject="x", text="x")


# --- 5. Subscribe limits: per mailbox and domain; forwarded headers from trusted proxies only --------

def test_spellings_of_one_mailbox_share_its_limit(app, settings):
    for n, spelling in enumerate(["victim@example.org", "victim+1@example.org", "vic.tim@example.org",
                                  "Victim+news@example.org", "v.i.c.t.i.m@example.org"]):
        assert "Check your email" in subscribe(client_at(app, settings, f"203.0.113.{n}"), settings, spelling).text
    assert len(outbox(settings)) == 3
    assert mailbox_key("Vic.Tim+1@Bücher.example") == "victim@xn--bcher-kva.example"


def test_one_domain_gets_a_limited_number_of_emails():
    limits = PageLimits()
    allowed, _ = EMAILS_PER_DOMAIN
    assert all(limits.may_email(f"person{n}@example.org") for n in range(allowed))
    assert not limits.may_email("one.more@example.org")
    assert limits.may_email("someone@example.net")


def test_a_client_cannot_pick_its_address_with_x_forwarded_for(app, settings, caplog):
    client = client_at(app, settings, "203.0.113.20")  # no trusted_proxies: nobody may say who the client is
    with caplog.at_level(logging.WARNING, logger="mailer.web"):
        answers = [subscribe(client, settings, f"r{n}@example.org", {"x-forwarded-for": f"198.51.100.{n}"})
                   for n in range(11)]
    assert answers[-1].status_code == 429
    warnings = [record.getMessage() for record in caplog.records if "trusted_proxies" in record.getMessage()]
    assert len(warnings) == 1 and "203.0.113.20" in warnings[0]


def test_a_client_on_the_proxys_own_address_cannot_pick_its_address_either(settings, served):
    # The finding: served by uvicorn, a connection from 127.0.0.1 had X-Forwarded-For believed as sent.
    with httpx.Client(base_url=f"http://127.0.0.1:{served}", timeout=30) as client:
        answers = [subscribe(client, settings, f"r{n}@example.org", {"x-forwarded-for": f"198.51.100.{n}"})
                   for n in range(11)]
    assert answers[-1].status_code == 429


def test_a_trusted_proxy_names_the_client_and_a_forged_value_is_passed_over(settings, engine):
    proxied = create_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]}), engine=engine)
    proxy = client_at(proxied, settings, "127.0.0.1")
    # The proxy appends the address it saw; what the client sent before it is ignored.
    answers = [subscribe(proxy, settings, f"r{n}@example.org", {"x-forwarded-for": f"10.0.0.{n}, 198.51.100.5"})
               for n in range(11)]
    assert answers[-1].status_code == 429
    assert subscribe(proxy, settings, "r@example.org", {"x-forwarded-for": "198.51.100.6"}).status_code == 200


def test_trusted_proxies_must_be_addresses(settings):
    with pytest.raises(ValidationError, match="trusted_proxies"):
        settings.model_validate({**settings.model_dump(), "trusted_proxies": ["proxy.example.org"]})


def test_ipv6_clients_are_counted_per_64(app, settings):
    for n in range(10):
        assert subscribe(client_at(app, settings, f"2001:db8:1:2::{n + 1}"), settings, f"r{n}@example.org").status_code == 200
    assert subscribe(client_at(app, settings, "2001:db8:1:2:ffff::1"), settings, "r@example.org").status_code == 429
    assert subscribe(client_at(app, settings, "2001:db8:1:3::1"), settings, "r@example.org").status_code == 200


# --- 6. Log injection ------------------------------------------------------------------------------

def test_a_path_cannot_forge_log_lines_or_reach_the_terminal(client, caplog):
    with caplog.at_level(logging.INFO, logger="mailer.web"):
        client.get("/x%0AGET%20/admin%20200%201ms%1b[31m%E2%80%A8")
    (line,) = [record.getMessage() for record in caplog.records if record.name == "mailer.web"]
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert "/x%0AGET /admin 200 1ms%1B[31m%E2%80%A8 404" in line


# --- 7. Links and redirects stay on our site; only static files are cached publicly -----------------

@pytest.mark.parametrize("path", ["//evil.example/x", "/\\evil.example/x", "///evil.example/"])
def test_a_crafted_path_gives_no_link_to_another_site(client, settings, path):
    response = client.get(settings.base_url + path)
    assert response.status_code == 404
    for target in re.findall(r'(?:href|action)="([^"]*)"', response.text):
        assert target.startswith((settings.base_url + "/", "#")) or re.match(r"/[^/\\]", target), target


def test_the_host_header_is_never_reflected(client, settings, person):
    ann = person()
    for path in ["/subscribe/", "/archive/", "/static", f"/p/{preferences_url(settings, ann.id).rsplit('/', 1)[1]}"]:
        response = client.get(path, headers={"host": "evil.example"})
        assert "evil.example" not in response.headers.get("location", ""), path
        assert "evil.example" not in response.text, path


def test_only_the_static_files_themselves_are_cached_publicly(client):
    assert client.get("/favicon.ico").headers["cache-control"].startswith("public")
    assert client.get("/static/site.css").headers["cache-control"].startswith("public")
    for path in ["/favicon.icoX", "/favicon.ico/", "/static/nope.css", "/staticX/site.css"]:
        assert client.get(path).headers["cache-control"] == "no-store", path


# --- 8. HEAD wherever GET works -----------------------------------------------------------------------

def test_head_answers_like_get_without_a_body(client, settings, person):
    ann = person()
    paths = [unsubscribe_url(settings, ann.id), preferences_url(settings, ann.id), confirm_url(settings, ann.id, request_id=1),
             "/subscribe", "/archive", "/archive/feed.atom", "/static/site.css", "/favicon.ico", "/no/such/page",
             "/u/forged"]
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
    assert "HEAD" in client.put("/subscribe").headers["allow"]
    assert "HEAD" not in client.get(unsubscribe_url(settings, ann.id) + "/resubscribe").headers["allow"]


# --- 10. Secrets and addresses on disk are for their owner only ---------------------------------------

@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)  # what most systems give: files readable by everyone
    yield
    os.umask(previous)


def test_init_writes_the_settings_readable_by_their_owner_only(workdir, usual_umask):
    result = CliRunner().invoke(main, ["init", "--path", str(workdir / "mailer.toml")])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((workdir / "mailer.toml").stat().st_mode) == 0o600


def test_the_sqlite_database_is_created_for_its_owner_only(workdir, usual_umask):
    engine = make_engine(f"sqlite:///{workdir / 'fresh.db'}")
    upgrade(engine)
    engine.dispose()
    for path in workdir.glob("fresh.db*"):  # the database, and its -wal and -shm when there
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_service_unit_keeps_what_it_writes_private():
    assert re.search(r"^UMask=0077$", (ROOT / "docs" / "mailer.service").read_text(), flags=re.M)


# --- 11. Limits of the server itself ---------------------------------------------------------------

def test_the_server_is_configured_with_limits(settings, engine):
    config = server_config(settings, engine=engine)
    assert config.limit_concurrency == CONCURRENCY and config.h11_max_incomplete_event_size == MAX_HEADER_BYTES
    assert config.timeout_keep_alive and config.backlog and not config.proxy_headers


@pytest.fixture
def served(settings, engine):
    """The pages under uvicorn as `mailer serve` runs them, on 127.0.0.1 and a free port; yields the port."""
    port = free_port()
    server = uvicorn.Server(server_config(settings, host="127.0.0.1", port=port, engine=engine))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_oversized_headers_are_refused_by_the_real_server(served):
    with socket.create_connection(("127.0.0.1", served), timeout=30) as connection:
        connection.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1024)
                           + b"\r\n\r\n")
        assert connection.recv(100).startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    with socket.create_connection(("127.0.0.1", served), timeout=30) as connection:
        connection.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(100).startswith(b"HTTP/1.1 200")


def test_a_body_sent_too_slowly_gets_408():
    async def app(scope, receive, send):  # never reached
        raise AssertionError("the app saw a request whose body never came")

    async def receive():
        if not started.is_set():
            started.set()
            return {"type": "http.request", "body": b"email=", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes

    sent = []

    async def send(message):
        sent.append(message)

    started = asyncio.Event()
    scope = {"type": "http", "method": "POST", "path": "/subscribe", "headers": [(b"content-length", b"100")]}
    asyncio.run(SecurityMiddleware(app, https=True, body_seconds=0.05)(scope, receive, send))
    assert sent[0]["status"] == 408


# --- 12. A used confirmation link does not show the preferences link again ---------------------------

def test_the_preferences_link_is_shown_only_on_confirming(client, settings, db):
    subscribe(client, settings, "nia@example.org")
    link = link_in(outbox(settings)[0], "/confirm/")
    confirmed = press(client, settings, link)
    assert "You are subscribed" in confirmed.text and f"{settings.base_url}/p/" in confirmed.text
    later = client.get(link)
    assert "You are subscribed" in later.text and "/p/" not in later.text
    replayed = client.post(link, data={"csrf": form_token(client.get("/subscribe").text)},
                           headers=same_origin(settings))
    assert "/p/" not in replayed.text


# --- Sending with links nobody can use ---------------------------------------------------------------

@pytest.mark.parametrize("base_url,problem", [
    ("http://127.0.0.1:8000", "loopback"), ("https://[::1]", "loopback"), ("https://10.1.2.3", "private"),
    ("https://192.168.1.5:8443", "private"), ("https://localhost", "not on the internet"),
    ("https://mailer", "not on the internet"), ("https://news.lan", "not on the internet"),
    ("http://news.example.org", "must be https://"),
])
def test_unusable_base_urls_are_named(base_url, problem):
    assert problem in base_url_problem(base_url)


def test_a_public_https_base_url_is_fine():
    assert base_url_problem("https://news.example.org") is None
    assert base_url_problem("https://203.0.114.1/news") is None


@pytest.fixture
def mailer_cli(settings, engine, smtp_server, db, person):
    """`mailer ...` with a real SMTP server and `mailer init`'s base_url, and one subscriber of the sample's topic."""
    add_topic(db, name="news")
    db.commit()
    person("sian@example.com", topics=["news"])
    local = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                        "smtp_security": "none", "base_url": "http://127.0.0.1:8000",
                                        "languages": ["en", "cy"]})

    def run(*args: str):
        cli_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), env=env_for(local), catch_exceptions=False)
        finally:
            cli_settings.cache_clear()

    return run


def test_a_send_through_smtp_refuses_links_readers_cannot_use(mailer_cli, smtp_server, db):
    for command in (["send", str(SAMPLE_ISSUE), "--yes"], ["send", str(SAMPLE_ISSUE), "--test", "ed@example.org"],
                    ["send", "--resume", "1"], ["schedule", str(SAMPLE_ISSUE), "--at", "2099-01-01 09:00"],
                    ["run", "--no-web"], ["serve"]):  # the pages mail confirmations and welcomes
        refused = mailer_cli(*command)
        assert refused.exit_code == 1, (command, refused.output)
        assert "base_url is 'http://127.0.0.1:8000'" in refused.output and "--allow-insecure-links" in refused.output
    assert smtp_server.messages == [] and db.exec(select(Send)).all() == []

    allowed = mailer_cli("send", str(SAMPLE_ISSUE), "--yes", "--allow-insecure-links")
    assert allowed.exit_code == 0, allowed.output
    assert smtp_server.recipients() == ["sian@example.com"]


def test_lint_warns_about_links_readers_cannot_use(mailer_cli):
    linted = mailer_cli("issue", "lint", str(SAMPLE_ISSUE))
    assert "base_url is 'http://127.0.0.1:8000', a loopback address" in linted.output
