"""`mailer serve`: a real uvicorn process serving the pages, logging without tokens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.tokens import unsubscribe_url
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import PATIENCE, wait_for

CONFIG = """secret_key = "test-secret-key-0123456789"
database_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
"""


def _answers(process: subprocess.Popen[str], port: int) -> bool:
    """Whether `mailer serve` answers yet; a server that died fails the test at once."""
    assert process.poll() is None, "mailer serve stopped"
    try:
        httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=2)
    except httpx.TransportError:
        return False
    return True


@pytest.mark.slow
def test_serve_runs_the_pages(workdir, settings, engine, person):
    ann = person()
    port = free_port()
    (workdir / "mailer.toml").write_text(CONFIG.format(db=workdir / "mailer.db", port=port))
    token_url = unsubscribe_url(settings, ann.id).replace(settings.base_url, f"http://127.0.0.1:{port}")
    process = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", str(port)], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "MAILER_CONFIG": str(workdir / "mailer.toml")})
    try:
        wait_for(lambda: _answers(process, port), "mailer serve to answer")
        response = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=PATIENCE)
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        assert httpx.get(token_url, timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=PATIENCE)
    assert "GET /subscribe 200" in output and "GET /u/… 200" in output
    assert token_url.rsplit("/", 1)[1] not in output


def test_serve_refuses_an_out_of_date_database(workdir):
    (workdir / "mailer.toml").write_text(CONFIG.format(db=workdir / "empty.db", port=8000))
    result = CliRunner().invoke(main, ["serve"], env={"MAILER_CONFIG": str(workdir / "mailer.toml")})
    assert result.exit_code == 1 and "mailer db upgrade" in result.output


def test_serve_on_a_port_in_use_says_so(workdir, engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (workdir / "mailer.toml").write_text(CONFIG.format(db=workdir / "mailer.db", port=port))
        result = CliRunner().invoke(main, ["serve", "--port", str(port)],
                                    env={"MAILER_CONFIG": str(workdir / "mailer.toml")})
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port} (is the port in use?)" in result.output
