import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.config import SAMPLE_FILE, Settings, load_settings
from mailer.errors import ConfigError


def test_every_setting_is_documented_in_the_sample():
    sample = SAMPLE_FILE.read_text(encoding="utf-8")
    keys = set(re.findall(r"^([a-z_]+) =", sample, flags=re.M))
    assert keys == set(Settings.model_fields)
    # and each key has a comment above it (or above its group)
    lines = sample.splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_]+ =", line):
            above = [previous for previous in lines[max(0, number - 4):number] if previous.strip()]
            assert above, f"{line} has nothing above it"


def test_init_writes_a_loadable_file_with_a_fresh_secret(workdir: Path):
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    first = tomllib.loads((workdir / "mailer.toml").read_text())["secret_key"]
    assert len(first) >= 32
    settings = load_settings()
    assert settings.secret_key == first
    assert settings.database_url == f"sqlite:///{workdir / 'mailer.db'}"  # relative paths: against the file's folder

    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_two_inits_make_different_secrets(tmp_path: Path, workdir: Path):
    CliRunner().invoke(main, ["init", "--path", str(tmp_path / "a.toml")])
    CliRunner().invoke(main, ["init", "--path", str(tmp_path / "b.toml")])
    a = tomllib.loads((tmp_path / "a.toml").read_text())["secret_key"]
    b = tomllib.loads((tmp_path / "b.toml").read_text())["secret_key"]
    assert a != b


def test_missing_secret_names_the_key_and_the_file(workdir: Path):
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "mailer.toml: secret_key: is missing" in str(caught.value)
    assert "mailer init" in str(caught.value)


def test_invalid_value_names_the_key_and_the_file(workdir: Path):
    (workdir / "mailer.toml").write_text('secret_key = "a-long-enough-secret-key"\nsmtp_port = "lots"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "mailer.toml: smtp_port:" in str(caught.value)


def test_placeholder_secret_and_relative_base_url_are_refused(workdir: Path):
    (workdir / "mailer.toml").write_text('secret_key = "changeme"\nbase_url = "example.org"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "secret_key" in message and "base_url" in message


def test_unknown_key_is_refused(workdir: Path):
    (workdir / "mailer.toml").write_text('secret_key = "a-long-enough-secret-key"\nsender_adress = "x@y"\n')
    with pytest.raises(ConfigError, match="sender_adress"):
        load_settings()


def test_broken_toml_is_a_clean_error(workdir: Path):
    (workdir / "mailer.toml").write_text('secret_key = "unterminated\n')
    with pytest.raises(ConfigError, match="mailer.toml: cannot read settings"):
        load_settings()


def test_environment_overrides_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    (workdir / "mailer.toml").write_text('secret_key = "a-long-enough-secret-key"\nbase_url = "https://a.example"\n')
    monkeypatch.setenv("MAILER_BASE_URL", "https://b.example/")
    assert load_settings().base_url == "https://b.example"


def test_config_file_can_be_named_by_environment(tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    other = tmp_path / "elsewhere.toml"
    other.write_text('secret_key = "a-long-enough-secret-key"\nlist_name = "Elsewhere"\n')
    monkeypatch.setenv("MAILER_CONFIG", str(other))
    assert load_settings().list_name == "Elsewhere"
