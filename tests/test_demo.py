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
    assert len(list((folder / "outbox").glob("*.eml"))) == 9  # the subscribers of `news`
    assert "http://127.0.0.1:8000/p/" in result.output

    monkeypatch.chdir(workdir)  # the demo works inside its folder
    again = CliRunner().invoke(main, ["demo", "--dir", "demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "10 unchanged" in again.output
