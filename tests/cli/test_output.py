"""Issue 13, finding 3: text from outside reaches the terminal as text, never as markup or escapes.

A subscriber named `[/]` (typed into the public form) made `subscribers list`, `show`,
`sends list` and `schedule list` end in rich's MarkupError; `[link=...]` became a
hidden hyperlink; control characters and ANSI escapes in CSV names and bounce
diagnostics reached the terminal raw. Each attack below goes through the real
command, with the console as a colour terminal would have it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlmodel import Session

from mailer.cli import main, output
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.sends import create_send
from mailer.store.models import Bounce, BounceKind, Subscriber, utcnow
from mailer.store.subscribers import add_subscriber
from mailer.store.topics import add_topic

CLOSE_TAG = "[/]"
HYPERLINK = "[link=https://evil.example]Your account[/link]"
CLEAR_SCREEN = "\x1b[2J\x1b[H"
OSC_HYPERLINK = "\x1b]8;;https://evil.example\x1b\\"
HOSTILE = ["[/]", HYPERLINK, f"Eve{CLEAR_SCREEN}", f"Mallory{OSC_HYPERLINK}x", "Bob\r\nSend 1 cancelled.",
           "ev\u202eil", ":skull: [bold red]ALERT[/]"]

ISSUE = """\
title: "{title}"
date: 2026-12-01
topics: [news]
sections:
  - heading: "News"
    body: "Text."
"""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands print to a fresh console that believes it is a colour terminal (wide: no value wraps)."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(output, "_consoles", {})


@pytest.fixture
def cli(settings: Settings, engine, terminal) -> Callable[..., Result]:
    env = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": settings.database_url,
           "MAILER_TEMPLATES_DIR": settings.templates_dir, "MAILER_OUTBOX_DIR": settings.outbox_dir}

    def run(*args: str) -> Result:
        cli_settings.cache_clear()
        return CliRunner().invoke(main, list(args), env=env)

    return run


def assert_inert(result: Result, *values: str) -> None:
    """The command worked and showed each value as text: no markup read, no escape or control character raw."""
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    printed = result.output
    assert "\x1b]8;" not in printed, "a terminal hyperlink was printed"
    for raw in (CLEAR_SCREEN, OSC_HYPERLINK, "\r", "\u202e", "\x1b[2J"):
        assert raw not in printed, repr(raw)
    for value in values:
        assert output.safe(value) in printed, value


@pytest.fixture
def hostile_subscribers(session: Session) -> list[str]:
    """Subscribers named as an attacker would. The store now drops control characters from names;
    the names are written as a database from before that holds them, since the terminal may not rely on it."""
    add_topic(session, name="news")
    emails = []
    for number, name in enumerate(HOSTILE):
        emails.append(f"reader{number}@example.org")
        added = add_subscriber(session, email=emails[-1], name="x", topics=["news"])
        session.execute(update(Subscriber).where(Subscriber.id == added.id).values(name=name))
    session.commit()
    return emails


def test_subscribers_list_shows_hostile_names_as_text(cli, hostile_subscribers):
    result = cli("subscribers", "list")
    assert_inert(result)
    assert CLOSE_TAG in result.output and "[link=https://evil.example]" in result.output
    assert "\\x1b[2J" in result.output and ":skull:" in result.output and "[bold red]" in result.output


def test_subscribers_show_shows_a_hostile_name_as_text(cli, hostile_subscribers):
    for email, name in zip(hostile_subscribers, HOSTILE, strict=True):
        result = cli("subscribers", "show", email)
        assert_inert(result, name)


def test_sends_and_schedule_list_show_a_hostile_title_as_text(cli, settings, session, hostile_subscribers, workdir):
    issue = workdir / "hostile.yaml"
    issue.write_text(ISSUE.format(title=f"{CLOSE_TAG} {HYPERLINK}"), encoding="utf-8")
    create_send(session, settings=settings, issue_path=issue, scheduled_at=utcnow() + timedelta(days=30))
    session.commit()
    for command in (["sends", "list"], ["schedule", "list"], ["sends", "show", "1"]):
        result = cli(*command)
        assert_inert(result)
        assert CLOSE_TAG in result.output and "[link=https://evil.example]" in result.output, command


def test_bounce_diagnostics_and_addresses_are_shown_escaped(cli, session, hostile_subscribers):
    for number, diagnostic in enumerate(HOSTILE):
        session.add(Bounce(kind=BounceKind.permanent, address=f"x{CLEAR_SCREEN}{number}@example.org",
                           diagnostic=f"550 {diagnostic}", message_id=f"<{number}@example.org>"))
    session.commit()
    result = cli("bounces", "report")
    assert_inert(result, *(f"550 {diagnostic}" for diagnostic in HOSTILE))
    assert "Bob\\r\\nSend 1 cancelled." in result.output  # no forged line


def test_csv_import_reports_hostile_values_as_text(cli, session, workdir: Path):
    add_topic(session, name="news")
    session.commit()
    csv = workdir / "members.csv"
    csv.write_text(f'email,name\nok@example.org,"{HYPERLINK}"\n"bad{CLEAR_SCREEN}@example.org",Eve\n"[/]",x\n',
                   encoding="utf-8")
    result = cli("subscribers", "import", str(csv), "--dry-run")
    assert_inert(result)
    assert "[/]" in result.output and "\\x1b[2J" in result.output


def test_errors_show_values_from_outside_escaped(cli, hostile_subscribers):
    result = cli("subscribers", "show", f"nobody{CLEAR_SCREEN}@example.org")
    assert result.exit_code == 1
    assert CLEAR_SCREEN not in result.output and "\\x1b[2J" in result.output


def test_a_settings_value_is_shown_as_text(cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAILER_SENDER_NAME", f"{HYPERLINK}{CLEAR_SCREEN}")
    assert_inert(cli("config", "show"), HYPERLINK)


@pytest.mark.parametrize(("value", "shown"), [
    ("plain Gwenllïan ŵ 🦉", "plain Gwenllïan ŵ 🦉"),
    ("[/]", "[/]"),
    ("a\x1b[31mb", "a\\x1b[31mb"),
    ("line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"),
    ("nul\x00 del\x7f c1\x9b", "nul\\x00 del\\x7f c1\\x9b"),
    ("bidi\u202eoverride\u2066", "bidi\\u202eoverride\\u2066"),
])
def test_safe_shows_every_control_character_as_an_escape(value: str, shown: str):
    assert output.safe(value) == shown


def test_printable_keeps_our_own_line_breaks_and_tabs():
    assert output.printable("one\n\ttwo\x1b[2J") == "one\n\ttwo\\x1b[2J"
