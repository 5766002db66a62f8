"""Section 3 of issue 15: tables stay readable at 80 columns, and sizes read the same everywhere.

At 80 columns, addresses were broken mid-word and dates cut to `2026-12-…`. Now
no line is wider than the terminal, addresses, dates and IDs stay whole on one
line, and only free text (names, titles) wraps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session

from mailer.cli import main, output
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.sends import create_send
from mailer.store.models import utcnow
from mailer.store.subscribers import add_subscriber
from mailer.store.topics import add_topic

ADDRESS = "sian.roberts@cymdeithas.cymru"  # a long address of the kind most lists have
LONG_ADDRESS = "gwenllian.ap.rhys.from.the.valleys@cymdeithas-gymunedol.example.org"  # wraps, but is never cut
MESSAGES = ("Note:", "Settings file:")  # plain lines, which the terminal wraps as it likes
LONG_NAME = "Gwenllïan Angharad ap Rhys o Gwm Rhondda, Ysgrifennydd y Gymdeithas"
ISSUE = """\
title: "Network News: the long December issue with a title that goes on and on for ever"
date: 2026-12-01
topics: [news, events, training]
sections:
  - heading: "News"
    body: "Text."
"""


@pytest.fixture
def cli(settings: Settings, engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(output, "_consoles", {})  # a fresh console, 80 columns wide
    env = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": settings.database_url,
           "MAILER_TEMPLATES_DIR": settings.templates_dir}

    def run(*args: str) -> Result:
        cli_settings.cache_clear()
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    return run


@pytest.fixture
def crowded(session: Session, settings: Settings, workdir) -> None:
    for topic in ("news", "events", "training"):
        add_topic(session, name=topic, description=f"Everything about {topic}, every month, in English and Welsh")
    add_subscriber(session, email=ADDRESS, name=LONG_NAME, topics=["news", "events", "training"])
    add_subscriber(session, email="bob@example.org", name="Bob", topics=["news"])
    issue = workdir / "long.yaml"
    issue.write_text(ISSUE, encoding="utf-8")
    create_send(session, settings=settings, issue_path=issue, scheduled_at=utcnow() + timedelta(days=30))
    session.commit()


def assert_fits(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80 or line.startswith(MESSAGES), f"{len(line)} columns: {line!r}"
    assert "…" not in text, "something was cut"


@pytest.mark.parametrize("command", [["subscribers", "list"], ["subscribers", "show", ADDRESS],
                                     ["topics", "list"], ["sends", "list"], ["schedule", "list"],
                                     ["subscribers", "stats"], ["config", "show"]])
def test_tables_fit_80_columns_and_cut_nothing(cli, crowded, command: list[str]):
    assert_fits(cli(*command).output)


def test_addresses_and_dates_stay_whole(cli, crowded):
    listed = cli("subscribers", "list").output
    assert ADDRESS in listed
    assert len(re.findall(r"\b\d{4}-\d{2}-\d{2}\b", listed)) == 2
    assert re.search(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}\b", cli("sends", "list").output)
    assert re.search(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2} (GMT|BST)\b", cli("schedule", "list").output)


def test_an_address_too_long_for_the_terminal_wraps_but_nothing_is_cut(cli, crowded, session):
    add_subscriber(session, email=LONG_ADDRESS, name=LONG_NAME, topics=["news"])
    session.commit()
    listed = cli("subscribers", "list").output
    assert_fits(listed)
    assert ADDRESS in listed and len(re.findall(r"\b\d{4}-\d{2}-\d{2}\b", listed)) == 3


def test_sizes_read_the_same_everywhere(cli, workdir):
    from tests.cli.test_imports import SAMPLE_ISSUE

    built = cli("issue", "build", str(SAMPLE_ISSUE), "-o", str(workdir / "build")).output
    sizes = re.findall(r"(\d+(?:\.\d)?) (KB|bytes|B|kB)\b", built)
    assert len(sizes) >= 4 and {unit for _, unit in sizes} == {"KB"}, built
    assert output.size(1536) == "1.5 KB" and output.size(102 * 1024 + 1) == "102.0 KB"
