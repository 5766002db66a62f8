"""`mailer demo --no-serve`: the README's first command, minus the part that runs until Ctrl-C."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli import main


def test_demo_builds_imports_sends_and_prints_a_working_link(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    result = CliRunner().invoke(main, ["demo", "--dir", "demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    folder = workdir / "demo"
    assert (folder / "mailer.toml").exists()
    assert {path.suffix for path in (folder / "build").iterdir()} == {".html", ".txt", ".mjml", ".eml"}
    assert "10 added" in result.output
    assert len(list((folder / "outbox").glob("*.eml"))) == 10  # `news` is a default topic: everyone gets it
    assert "http://127.0.0.1:8000/p/" in result.output

    monkeypatch.chdir(workdir)  # the demo works inside its folder
    again = CliRunner().invoke(main, ["demo", "--dir", "demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "10 unchanged" in again.output
    # Finding 1: a second run mailed the demo subscribers again; now it says what it reused.
    assert "reused: issue 2026-11-open-letter was sent as send 1 on " in again.output
    assert "to 10 subscribers\n  nothing mailed again" in again.output
    assert len(list((folder / "outbox").glob("*.eml"))) == 10


def test_demo_schedules_the_second_sample_once_and_reuses_it(workdir: Path, capsys: pytest.CaptureFixture[str]):
    from sqlmodel import select

    from mailer.cli.demo import _schedule_sample
    from mailer.config import Settings
    from mailer.store.db import make_engine, new_session, upgrade
    from mailer.store.models import Send, Topic

    settings = Settings(secret_key="test-secret-key-0123456789", database_url=f"sqlite:///{workdir / 'demo.db'}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
    for _ in range(2):
        _schedule_sample(engine, settings)
    output = capsys.readouterr().out
    assert "reused: issue 2026-12-network-launch is scheduled as send 1 for" in output and "moved to" in output
    with new_session(engine) as session:
        assert [send.status for send in session.exec(select(Send))] == ["scheduled"]
    engine.dispose()
