"""Section 4 of issue 15: `mailer config check` against real servers before the first real send.

A real SMTP server on loopback (aiosmtpd; STARTTLS and login with a certificate the
test trusts), SQLite files and the PostgreSQL test server, a DKIM key written by
`mailer dkim keygen`.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result

from mailer.cli import main, output
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from tests.delivery.test_tls import authenticate, certificate  # noqa: F401  (a fixture, used by name)
from tests.fixtures.postgres import fresh_database
from tests.fixtures.smtp import RecordingHandler, free_port

GOOD = {"MAILER_BASE_URL": "https://news.cymdeithas.cymru", "MAILER_SENDER_ADDRESS": "news@cymdeithas.cymru"}


@pytest.fixture
def check(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`mailer config check` with the test's settings plus these MAILER_* variables."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(output, "_consoles", {})

    def run(**env: str) -> Result:
        cli_settings.cache_clear()
        base = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": settings.database_url, **GOOD}
        return CliRunner().invoke(main, ["config", "check"], env={**base, **env})

    return run


def line(result: Result, name: str) -> str:
    found = re.search(rf"^(ok|warning|failed)\s+{name}: (.*)$", result.output, re.M)
    assert found, result.output
    return f"{found.group(1)} {found.group(2)}"


def test_a_missing_sqlite_database_fails_and_is_not_created(check, workdir: Path):
    result = check(MAILER_DATABASE_URL=f"sqlite:///{workdir / 'nothing.db'}")
    assert result.exit_code == 1
    assert line(result, "database") == f"failed no database at {workdir / 'nothing.db'}: run `mailer db upgrade`"
    assert not (workdir / "nothing.db").exists()


def test_an_upgraded_sqlite_database_passes(check, engine):
    assert line(check(), "database").startswith("ok sqlite:///") and "schema up to date" in line(check(), "database")


@pytest.mark.postgres
def test_postgresql_that_answers_passes_and_one_that_does_not_fails(check):
    with fresh_database("mailer_check") as url:
        assert line(check(MAILER_DATABASE_URL=url), "database").startswith("ok postgresql+psycopg://")
    closed = f"postgresql+psycopg://news:hunter2@127.0.0.1:{free_port()}/news"
    result = check(MAILER_DATABASE_URL=closed)
    assert result.exit_code == 1
    failed = line(result, "database")
    assert failed.startswith("failed cannot open the database postgresql+psycopg://news:***@127.0.0.1:")
    assert "refused" in failed
    assert "hunter2" not in result.output


def test_smtp_that_answers_passes_with_its_greeting(check, engine, smtp_server):
    result = check(MAILER_SMTP_HOST="127.0.0.1", MAILER_SMTP_PORT=str(smtp_server.port), MAILER_SMTP_SECURITY="none")
    assert line(result, "delivery").startswith(f"ok 127.0.0.1:{smtp_server.port} (none): ")
    assert smtp_server.messages == []  # nothing was sent


def test_smtp_that_does_not_answer_fails(check, engine):
    result = check(MAILER_SMTP_HOST="127.0.0.1", MAILER_SMTP_PORT=str(free_port()), MAILER_SMTP_SECURITY="none",
                   MAILER_SMTP_TIMEOUT="5")
    assert result.exit_code == 1
    assert re.match(r"failed 127\.0\.0\.1:\d+: .*refused", line(result, "delivery"), re.I)


def test_starttls_and_login_are_checked(check, engine, certificate: tuple[Path, Path]):  # noqa: F811
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controller = Controller(RecordingHandler(), hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            tls_context=context, require_starttls=True, auth_require_tls=True)
    controller.start()
    try:
        smtp = {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(controller.port),
                "MAILER_SMTP_SECURITY": "starttls", "MAILER_SMTP_USERNAME": "news", "MAILER_SMTP_TIMEOUT": "5"}
        good = check(**smtp, MAILER_SMTP_PASSWORD="s3cret")
        assert good.exit_code == 0, good.output
        assert line(good, "delivery").startswith(f"ok 127.0.0.1:{controller.port} (starttls, logged in as news): ")
        wrong = check(**smtp, MAILER_SMTP_PASSWORD="nope")
        assert wrong.exit_code == 1 and re.match(r"failed 127\.0\.0\.1:\d+: 535", line(wrong, "delivery"))
        assert "nope" not in wrong.output
    finally:
        controller.stop()


def test_an_empty_smtp_host_is_a_warning_naming_the_outbox(check, engine, settings: Settings):
    result = check(MAILER_OUTBOX_DIR=settings.outbox_dir)
    assert result.exit_code == 0
    assert line(result, "delivery") == f"warning smtp_host is empty: messages are written to {settings.outbox_dir}, not sent"


@pytest.mark.parametrize(("base_url", "expected"), [
    ("http://127.0.0.1:8000", "a loopback address"),
    ("https://192.168.1.20", "a private address"),
    ("https://localhost:8443", "a name that is not on the internet"),
    ("http://news.cymdeithas.cymru", "links must be https://"),
    ("https://news.example.org", "still the sample's news.example.org"),
])
def test_a_base_url_readers_cannot_use_is_a_warning(check, engine, base_url: str, expected: str):
    result = check(MAILER_BASE_URL=base_url)
    assert result.exit_code == 0  # a warning: the outbox and a local trial are fine with it
    found = line(result, "base_url")
    assert found.startswith(f"warning base_url is {base_url!r}") and expected in found


def test_a_public_https_base_url_passes(check, engine):
    assert line(check(), "base_url") == "ok links start with https://news.cymdeithas.cymru"


def test_dkim_prints_the_record_keygen_asked_to_publish(check, engine, workdir: Path):
    assert line(check(), "dkim").startswith("warning not signing")
    cli_settings.cache_clear()
    keygen = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "news2026", "--out", str(workdir / "keys")],
                                env={"MAILER_SECRET_KEY": "x" * 32, **GOOD})
    assert keygen.exit_code == 0, keygen.output
    published = re.search(r'^news2026\._domainkey\.cymdeithas\.cymru IN TXT "(.+)"$', keygen.output, re.M)
    assert published
    result = check(MAILER_DKIM_SELECTOR="news2026", MAILER_DKIM_PRIVATE_KEY=str(workdir / "keys" / "news2026.private"))
    assert line(result, "dkim") == f'ok key read; publish: news2026._domainkey.cymdeithas.cymru IN TXT "{published.group(1)}"'
    broken = check(MAILER_DKIM_SELECTOR="news2026", MAILER_DKIM_PRIVATE_KEY=str(workdir / "keys" / "news2026.public"))
    assert broken.exit_code == 1 and line(broken, "dkim").startswith("failed dkim_private_key: cannot read an RSA private key")


def test_everything_in_order_and_exit_zero_when_nothing_failed(check, engine):
    result = check()
    assert result.exit_code == 0, result.output
    names = re.findall(r"^(?:ok|warning|failed)\s+(\w+):", result.output, re.M)
    assert names == ["database", "delivery", "base_url", "sender", "dkim"]
