"""Fixtures for the editor's pipeline: issue files written on the spot, the sample issues, CLI settings."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mailer.cli import common

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EN = ROOT / "issues" / "2026-11-open-letter.yaml"
SAMPLE_BILINGUAL = ROOT / "issues" / "2026-12-network-launch.yaml"

MINIMAL = """\
title: "Network news: December"
date: 2026-12-01
preheader: "A new network for Wales"
sections:
  - heading: "A network for Wales"
    body: |
      Some **news**.
"""


@pytest.fixture
def write_issue(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML (dedented) to a file and return its path."""

    def write(text: str, name: str = "issue.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings for commands run with CliRunner, read fresh from the environment by each test."""
    env = {
        "MAILER_SECRET_KEY": "test-secret-key-0123456789",
        "MAILER_TEMPLATES_DIR": str(ROOT / "mailer" / "templates"),
        "MAILER_BASE_URL": "https://news.example.org",
        "MAILER_LIST_NAME": "Network News",
        "MAILER_POSTAL_ADDRESS": "1 Example Street, Cardiff CF10 1AA",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    common.settings.cache_clear()
    yield env
    common.settings.cache_clear()
