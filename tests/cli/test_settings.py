"""Section 4 of issue 15: settings that explain themselves.

Relative paths resolve against the settings file's folder, `--config` names the
file, every error names the variable or the key and file it came from, and
`mailer config show` says where each value comes from, with secrets masked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailer.cli import main, output
from mailer.cli.common import settings as cli_settings
from mailer.config import load_settings
from mailer.errors import ConfigError

SECRET = "a-long-enough-secret-key-for-tests"


def set_in_file(path: Path, **values: str) -> None:
    """Change settings in a file written by `mailer init`, as an editor would."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for key, value in values.items():
        lines = [line for line in lines if not line.startswith(f"{key} =")] + [f'{key} = "{value}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def mailer(*args: str, cwd: Path | None = None, **env: str) -> Result:
    """`mailer ARGS...` as typed in `cwd`, with these MAILER_* variables."""
    here = Path.cwd()
    os.chdir(cwd or here)
    cli_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env or None)
    finally:
        os.chdir(here)
        cli_settings.cache_clear()


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(output, "_consoles", {})


@pytest.fixture
def project(workdir: Path) -> Path:
    """/.../project/mailer.toml as `mailer init` writes it, its database upgraded; the test works elsewhere."""
    folder = workdir / "project"
    folder.mkdir()
    assert mailer("init", cwd=folder).exit_code == 0
    assert mailer("db", "upgrade", cwd=folder).exit_code == 0
    (workdir / "elsewhere").mkdir()
    return folder


def test_relative_paths_in_the_file_are_relative_to_its_folder(project: Path, workdir: Path, monkeypatch):
    """The issue's case: MAILER_CONFIG from another folder made an empty ./mailer.db there."""
    elsewhere = workdir / "elsewhere"
    monkeypatch.setenv("MAILER_CONFIG", str(project / "mailer.toml"))
    result = mailer("subscribers", "list", cwd=elsewhere)
    assert result.exit_code == 0, result.output
    assert "0 subscribers" in result.output
    assert not (elsewhere / "mailer.db").exists()
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{project / 'mailer.db'}"
    assert settings.outbox_dir == str(project / "outbox")


def test_the_global_config_option_names_the_file(project: Path, workdir: Path):
    elsewhere = workdir / "elsewhere"
    result = mailer("--config", str(project / "mailer.toml"), "db", "current", cwd=elsewhere)
    assert result.exit_code == 0 and "up to date" in result.output, result.output
    assert not (elsewhere / "mailer.db").exists()
    shown = mailer("--config", str(project / "mailer.toml"), "config", "show", cwd=elsewhere)
    assert f"Settings file: {project / 'mailer.toml'}" in shown.output


def test_init_writes_where_config_says(workdir: Path):
    target = workdir / "news.toml"
    result = mailer("--config", str(target), "init")
    assert result.exit_code == 0 and target.exists(), result.output


def test_relative_paths_in_the_environment_are_relative_to_the_working_folder(project: Path, workdir: Path, monkeypatch):
    monkeypatch.setenv("MAILER_CONFIG", str(project / "mailer.toml"))
    monkeypatch.setenv("MAILER_OUTBOX_DIR", "out")
    monkeypatch.chdir(workdir / "elsewhere")
    assert load_settings().outbox_dir == "out"


@pytest.mark.parametrize(("setting", "value"), [("database_url", "sqlite:////srv/news/mailer.db"),
                                                  ("database_url", "postgresql+psycopg://news@db.example/news"),
                                                  ("database_url", "sqlite://"),
                                                  ("bounce_mailbox", "imaps://news:pw@mail.example/INBOX"),
                                                  ("dkim_private_key", "/etc/mailer/news.private")])
def test_absolute_paths_and_urls_are_left_alone(project: Path, setting: str, value: str):
    set_in_file(project / "mailer.toml", **{setting: value})
    assert getattr(load_settings(project / "mailer.toml"), setting) == value


def test_templates_beside_the_settings_file_override_the_shipped_ones(project: Path):
    (project / "templates" / "email").mkdir(parents=True)
    assert load_settings(project / "mailer.toml").templates_path == project / "templates"


def test_an_environment_variable_error_names_the_variable(project: Path, monkeypatch):
    monkeypatch.setenv("MAILER_WEB_PORT", "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings(project / "mailer.toml")
    assert str(caught.value).startswith("environment variable MAILER_WEB_PORT: ")
    assert "mailer.toml" not in str(caught.value)
    monkeypatch.delenv("MAILER_WEB_PORT")
    monkeypatch.setenv("MAILER_LANGUAGES", '["en", "cy"')
    with pytest.raises(ConfigError, match="^environment variable MAILER_LANGUAGES: cannot parse the value"):
        load_settings(project / "mailer.toml")


def test_a_misspelt_time_zone_names_the_key_and_the_file(project: Path, monkeypatch):
    path = project / "mailer.toml"
    set_in_file(path, timezone="Europe/Londn")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: timezone: unknown time zone 'Europe/Londn' (examples: Europe/London, UTC)"
    monkeypatch.setenv("MAILER_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="^environment variable MAILER_TIMEZONE: unknown time zone 'Mars/Olympus'"):
        load_settings(path)


def test_config_show_says_where_each_value_comes_from_and_hides_secrets(project: Path, monkeypatch):
    path = project / "mailer.toml"
    set_in_file(path, smtp_password="hunter2-smtp", bounce_mailbox="imaps://news:hunter2-imap@mail.example/INBOX")
    path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith("smtp_timeout")))
    monkeypatch.setenv("MAILER_WEB_PORT", "8080")
    monkeypatch.setenv("MAILER_DATABASE_URL", "postgresql+psycopg://news:hunter2-db@127.0.0.1:5432/news")
    result = mailer("--config", str(path), "config", "show")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.output.splitlines()[3:] if line.strip()}
    assert rows["web_port"].split() == ["8080", "MAILER_WEB_PORT"]
    assert rows["list_name"].endswith(str(path)) and "Network News" in rows["list_name"]
    assert rows["smtp_timeout"].split() == ["30.0", "default"]
    assert rows["secret_key"].startswith("(set, hidden)") and rows["smtp_password"].startswith("(set, hidden)")
    assert rows["old_secret_keys"].startswith("(empty)")
    assert "news:***@127.0.0.1" in rows["database_url"] and "imaps://news:***@mail.example" in rows["bounce_mailbox"]
    assert "hunter2" not in result.output
    assert load_settings(path).secret_key not in result.output
