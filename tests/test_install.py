"""Issue 15, section 1: the wheel works from an empty folder, as `pip install` / `pipx install` leave it.

Editable installs hide what a wheel leaves out (the templates, catalogues and
migrations once were). So CI builds the wheel, installs it into a fresh virtual
environment outside the checkout, and runs a user's first steps there, including
`mailer serve` answering a page. Dependencies come from the configured package
index (pip's cache makes later runs quick).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import PATIENCE, wait_for

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 900  # seconds: a fresh environment downloads every dependency once

pytestmark = pytest.mark.slow


def run(*argv: str | Path, cwd: Path, timeout: float = PATIENCE, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, f"{' '.join(map(str, argv))}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh virtual environment with only the built wheel (and its dependencies) in it."""
    where = tmp_path_factory.mktemp("install")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", where / "dist", ROOT,
                cwd=where, timeout=INSTALL_TIMEOUT)
    assert "deprecat" not in built.lower(), built  # e.g. the `project.license` table pip warned about four times
    (wheel,) = (where / "dist").glob("mailer-*.whl")
    run(sys.executable, "-m", "venv", where / "venv", cwd=where)
    run(where / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=where, timeout=INSTALL_TIMEOUT)
    return where / "venv" / "bin"


def clean_environment() -> dict[str, str]:
    """This process's environment without MAILER_* settings or this checkout on the import path."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith("MAILER_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_wheel_builds_an_issue_from_an_empty_folder(installed: Path, tmp_path: Path):
    env = clean_environment()
    mailer = installed / "mailer"
    for step in (["init"], ["db", "upgrade"], ["issue", "new", "x"]):
        run(mailer, *step, cwd=tmp_path, env=env)
    built = run(mailer, "issue", "build", "issues/x.yaml", cwd=tmp_path, env=env)
    assert (tmp_path / "build" / "x.html").stat().st_size > 10_000, built
    assert "Dear" in (tmp_path / "build" / "x.txt").read_text(encoding="utf-8")
    where = run(installed / "python", "-c", "import mailer; print(mailer.__file__)", cwd=tmp_path, env=env)
    assert str(installed.parent) in where and str(ROOT) not in where  # the wheel's copy, not the checkout's


def test_the_wheel_serves_the_pages(installed: Path, tmp_path: Path):
    env = clean_environment()
    for step in (["init"], ["db", "upgrade"]):
        run(installed / "mailer", *step, cwd=tmp_path, env=env)
    port = free_port()
    server = subprocess.Popen([installed / "mailer", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def answers() -> bool:
        assert server.poll() is None, "mailer serve stopped"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, "the installed mailer serve to answer")
        page = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=PATIENCE)
        assert "<form" in page.text and httpx.get(f"http://127.0.0.1:{port}/static/site.css", timeout=PATIENCE).status_code == 200
        welsh = httpx.get(f"http://127.0.0.1:{port}/subscribe?lang=cy", timeout=PATIENCE)
        assert "Tanysgrifio" in welsh.text  # the Welsh catalogue shipped and compiled
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=PATIENCE)
