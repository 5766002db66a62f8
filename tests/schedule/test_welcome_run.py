"""`mailer run` as a real process with its pages: a reader who confirms (clicking twice) is welcomed once; a
welcome queued while the runner was killed is delivered, once, by the next runner."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from mailer.delivery import welcome
from mailer.store.models import Delivery, Send
from mailer.store.subscribers import add_subscriber
from tests.fixtures.settings import ROOT
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import PATIENCE, wait_for

WELCOME_SUBJECTS = {"Welcome to the network", "Croeso i'r rhwydwaith", "Croeso i'r rhwydwaith / Welcome to the network"}


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    # Its pages on loopback are what the test reader opens: links a real reader could not use.
    return subprocess.Popen([sys.executable, "-m", "mailer", "run", "--allow-insecure-links"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def answering(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def restart(env: dict[str, str]) -> subprocess.Popen[str]:
    """`mailer run` again, as systemd restarts it: a runner killed a moment ago still holds the runner
    lease for a while, and a new one refuses to start until it lapses."""
    while (process := started(env)) is None:
        time.sleep(2)
    return process


def started(env: dict[str, str]) -> subprocess.Popen[str] | None:
    """A runner that started, or None when it refused because the killed one's lease has not lapsed yet."""
    process = start(env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    wait_for(lambda: process.poll() is not None or any(" started" in line for line in lines), "a runner to start")
    if process.poll() is None:
        return process
    reader.join(PATIENCE)
    assert "another runner" in "".join(lines), lines
    return None


def settled(engine) -> bool:
    """Every delivery recorded and no send held by a process: what a kill must not interrupt here, since
    the engine's documented window (one message per connection may go again after a kill) is not the subject."""
    with engine.connect() as conn:
        busy = conn.execute(select(Send.id).where(Send.lease_owner != "")).first()
        return busy is None and not conn.execute(select(Delivery.id).where(Delivery.status != "sent")).first()


def welcomed(smtp_server) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in smtp_server.messages if r.message["Subject"] in WELCOME_SUBJECTS)


@pytest.mark.slow
def test_welcome_once_across_a_double_click_and_a_killed_runner(smtp_settings, subprocess_env, engine, session,
                                                                 smtp_server, workdir):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shutil.copy(ROOT / "issues" / "welcome.yaml", workdir / "welcome.yaml")
    env = {**subprocess_env, "MAILER_WELCOME_ISSUE": str(workdir / "welcome.yaml"), "MAILER_WEB_PORT": str(port),
           "MAILER_BASE_URL": base, "MAILER_LANGUAGES": '["en", "cy"]'}
    process = start(env)
    try:
        wait_for(lambda: answering(f"{base}/subscribe"), "the runner's pages")
        with httpx.Client(base_url=base, headers={"origin": base}, timeout=PATIENCE) as browser:
            form = browser.get("/subscribe").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
            browser.post("/subscribe", data={"csrf": csrf, "email": "nia@example.org", "language": "cy",
                                             "consent": "yes"})
            wait_for(lambda: smtp_server.messages, "the confirmation email")
            link = re.search(rf"{base}/confirm/\S+", smtp_server.messages[0].message.get_body(("plain",))
                             .get_content()).group(0)  # type: ignore[union-attr]
            csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(link).text).group(1)  # type: ignore[union-attr]
            for _ in range(2):  # a double click
                assert browser.post(link, data={"csrf": csrf}).status_code == 200
        wait_for(lambda: welcomed(smtp_server) and settled(engine), "the welcome, recorded")
        process.kill()  # SIGKILL: nothing tidied up
        process.wait(timeout=PATIENCE)

        # While no runner runs, another reader is queued a welcome, as a page process that died after its commit.
        send_id = welcome.prepare(smtp_settings.model_copy(update={"welcome_issue": env["MAILER_WELCOME_ISSUE"]}),
                                  engine)
        owen = add_subscriber(session, email="owen@example.org", language="en")
        assert welcome.add_reader(session, send_id=send_id, subscriber_id=owen.id)

        process = restart(env)
        wait_for(lambda: welcomed(smtp_server)["owen@example.org"], "the next runner to deliver the queued welcome")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=PATIENCE) == 0
    finally:
        process.kill()
    assert welcomed(smtp_server) == Counter({"nia@example.org": 1, "owen@example.org": 1})
    subjects = {r.rcpt_tos[0]: r.message["Subject"] for r in smtp_server.messages}
    assert subjects["nia@example.org"] == "Croeso i'r rhwydwaith" and subjects["owen@example.org"] == "Welcome to the network"
