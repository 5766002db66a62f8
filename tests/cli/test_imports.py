"""Section 2 of issue 15: each command imports only what it uses.

Start-up time is measured by bench/bench_startup.py; these tests check its cause,
the modules a fresh `mailer` process imports, without timing anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ISSUE = ROOT / "issues" / "2026-11-open-letter.yaml"
WEB = {"fastapi", "starlette", "uvicorn"}
RENDERING = {"premailer", "mjml", "cssutils"}
STORE = {"sqlalchemy", "sqlmodel", "alembic", "psycopg", "apscheduler"}
# Everything a `--help` can do without: besides the above, settings, terminal tables, templates, YAML.
LIBRARIES = WEB | RENDERING | STORE | {"pydantic", "pydantic_settings", "rich", "jinja2", "yaml", "babel", "markdown_it",
                                       "nh3", "email_validator", "dkim", "cryptography", "feedgen", "itsdangerous"}

# Runs `mailer ARGS...` in a fresh interpreter and writes the top-level packages it imported.
PROBE = """
import json, sys
from mailer.cli import main
try:
    main(sys.argv[2:], prog_name="mailer")
except SystemExit:
    pass
with open(sys.argv[1], "w") as out:
    json.dump(sorted({name.partition(".")[0] for name in sys.modules}), out)
"""

pytestmark = pytest.mark.slow  # each case starts a real `mailer` process


def imported(workdir: Path, *args: str) -> set[str]:
    report = workdir / "modules.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    subprocess.run([sys.executable, "-c", PROBE, str(report), *args], cwd=workdir, env=env, check=True,
                   capture_output=True, timeout=120)
    return set(json.loads(report.read_text()))


@pytest.fixture
def project(workdir: Path) -> Path:
    """A folder with settings and an up-to-date database, as after `mailer init && mailer db upgrade`."""
    for step in (["init"], ["db", "upgrade"]):
        assert CliRunner().invoke(main, step).exit_code == 0
    return workdir


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_none_of_the_libraries(project: Path, command: str):
    loaded = imported(project, *command.split(), "--help")
    assert loaded & LIBRARIES == set()


def test_validate_imports_neither_the_web_framework_nor_the_renderer_nor_the_store(project: Path):
    loaded = imported(project, "issue", "validate", str(SAMPLE_ISSUE))
    assert loaded & (WEB | RENDERING | STORE) == set()


@pytest.mark.parametrize("command", [["subscribers", "list"], ["sends", "list"], ["schedule", "list"],
                                     ["bounces", "report"], ["config", "show"]])
def test_commands_that_neither_serve_nor_render_import_neither(project: Path, command: list[str]):
    assert imported(project, *command) & (WEB | RENDERING) == set()


def test_build_does_import_the_renderer(project: Path):
    """The probe sees imports at all: the command that renders loads MJML and premailer."""
    loaded = imported(project, "issue", "build", str(SAMPLE_ISSUE))
    assert RENDERING <= loaded and not loaded & WEB
