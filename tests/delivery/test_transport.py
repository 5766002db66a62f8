"""SMTP and outbox transports against a real SMTP server on loopback, and one-off notices."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.delivery.notices import send_notice
from mailer.delivery.transport import OutboxTransport, SMTPTransport, open_transport, refusal
from mailer.errors import ConnectionFailure, PermanentFailure, SendError, TemporaryFailure
from tests.delivery.helpers import ended_owner
from tests.fixtures.smtp import free_port

MESSAGE = b"From: news@example.org\r\nTo: a@example.com\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture(params=[False, True], ids=["stepwise", "pipelined"])
def transport(request, smtp_server):  # type: ignore[no-untyped-def]
    smtp_server.handler.pipelining = request.param
    client = SMTPTransport(host="127.0.0.1", port=smtp_server.port, security="none", timeout=5)
    yield client
    client.close()


def test_messages_share_one_connection(transport: SMTPTransport, smtp_server) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        reply = transport.send("bounces@example.org", f"r{n}@example.com", MESSAGE)
        assert reply.code == 250 and str(reply) == "250 2.0.0 Accepted"
    assert smtp_server.recipients() == ["r0@example.com", "r1@example.com", "r2@example.com"]
    assert smtp_server.handler.connections == 1
    assert smtp_server.messages[0].mail_from == "bounces@example.org"
    assert b"\r\n.leading dot\r\n" in smtp_server.messages[0].data  # dot-stuffing undone by the server


@pytest.mark.parametrize("reply, error", [
    ("550 5.1.1 No such user", PermanentFailure),
    ("553 5.1.3 Bad address", PermanentFailure),
    ("451 4.3.0 Try later", TemporaryFailure),
    ("452 4.2.2 Mailbox full", TemporaryFailure),
    ("552 5.2.2 Over quota", TemporaryFailure),  # RFC 5321: treat 552 as temporary
    ("421 4.7.0 Too many", ConnectionFailure),
])
def test_refusals_are_sorted_and_the_connection_goes_on(transport: SMTPTransport, smtp_server, reply: str,  # type: ignore[no-untyped-def]
                                                         error: type) -> None:
    smtp_server.rules["no@example.com"] = reply
    with pytest.raises(error) as caught:
        transport.send("b@example.org", "no@example.com", MESSAGE)
    assert type(caught.value) is error and caught.value.code == int(reply[:3]) and reply[4:] in str(caught.value)
    assert transport.send("b@example.org", "yes@example.com", MESSAGE).code == 250
    assert smtp_server.recipients() == ["yes@example.com"]


def test_a_dropped_connection_is_reopened(transport: SMTPTransport, smtp_server) -> None:  # type: ignore[no-untyped-def]
    smtp_server.drop_on.add("drop@example.com")
    transport.send("b@example.org", "one@example.com", MESSAGE)
    with pytest.raises(ConnectionFailure):
        transport.send("b@example.org", "drop@example.com", MESSAGE)
    transport.send("b@example.org", "two@example.com", MESSAGE)
    assert smtp_server.recipients() == ["one@example.com", "two@example.com"]
    assert smtp_server.handler.connections == 2


def test_no_server_is_a_connection_failure() -> None:
    client = SMTPTransport(host="127.0.0.1", port=free_port(), security="none", timeout=2)
    with pytest.raises(ConnectionFailure, match="127.0.0.1"):
        client.send("b@example.org", "a@example.com", MESSAGE)


def test_starttls_refused_by_a_plain_server(smtp_server) -> None:  # type: ignore[no-untyped-def]
    client = SMTPTransport(host="127.0.0.1", port=smtp_server.port, security="starttls", timeout=5)
    with pytest.raises(ConnectionFailure, match="STARTTLS"):
        client.send("b@example.org", "a@example.com", MESSAGE)


def test_unexpected_reply_codes() -> None:
    assert isinstance(refusal(354, b"go on"), TemporaryFailure)
    assert isinstance(refusal(-1, b""), TemporaryFailure)


def test_outbox_names_each_file_by_its_delivery_and_a_resend_replaces_it(tmp_path: Path) -> None:
    first, second = OutboxTransport(tmp_path / "out"), OutboxTransport(tmp_path / "out")
    replies = []
    threads = [threading.Thread(target=lambda t=t, n=n: replies.append(
        t.send("b@example.org", f"r{n}@x.org", MESSAGE, key=f"{n:06d}"))) for n in range(1, 21) for t in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = sorted((tmp_path / "out").iterdir())
    # Both writers sent each delivery: the outbox holds it once.
    assert [f.name for f in files] == [f"{n:06d}.eml" for n in range(1, 21)]
    assert sorted(map(str, replies)) == sorted(f"250 written to {tmp_path / 'out' / f'{n:06d}.eml'}"
                                            for n in range(1, 21) for _ in (1, 2))
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["Return-Path"] == "<b@example.org>" and message["Subject"] == "hi"
    assert message["Delivered-To"] == "r1@x.org"
    # A message that names no delivery (a notice) gets a name of its own.
    assert str(first.send("b@example.org", "z@x.org", MESSAGE)).startswith(f"250 written to {tmp_path / 'out' / 'notice-'}")
    assert len(list((tmp_path / "out").iterdir())) == 21


def test_outbox_removes_the_temporary_files_of_ended_processes_only(tmp_path: Path) -> None:
    from mailer.delivery.owners import this_process

    folder = tmp_path / "out"
    folder.mkdir()
    ended = ended_owner().rpartition(":")[0]  # `this_process()` of a process that has ended
    (folder / f".tmp.{ended}.140000").write_bytes(b"half a mess")  # killed mid-write
    (folder / f".tmp.{this_process()}.140001").write_bytes(b"being written")  # this process, alive
    (folder / ".tmp.elsewhere:12:ab:34:56.1").write_bytes(b"another machine's")  # unknown: kept
    assert OutboxTransport(folder).remove_stale() == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f".tmp.{this_process()}.140001", ".tmp.elsewhere:12:ab:34:56.1"])


@pytest.mark.parametrize("blocked", ["outbox is a file", "parent is a file"])
def test_an_unwritable_outbox_is_a_connection_failure(tmp_path: Path, blocked: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" if blocked == "outbox is a file" else tmp_path / "file" / "outbox"
    with pytest.raises(ConnectionFailure, match="cannot write to outbox"):
        OutboxTransport(folder).send("b@example.org", "a@example.com", MESSAGE, key="000001")


def test_open_transport_chooses_by_settings(settings: Settings) -> None:
    assert isinstance(open_transport(settings), OutboxTransport)
    smtp = settings.model_copy(update={"smtp_host": "mail.example.org"})
    assert isinstance(open_transport(smtp), SMTPTransport)


def test_notice_through_smtp(settings: Settings, smtp_server) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                           "smtp_security": "none", "reply_to": "help@example.org"})
    reply = send_notice(settings, to="Siân <sian@example.com>", subject="Cadarnhewch eich tanysgrifiad",
                        text="Dilynwch y ddolen.\n", html="<p>Dilynwch y ddolen.</p>")
    assert reply.startswith("250")
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["sian@example.com"] and received.mail_from == "news@example.org"
    message = received.message
    assert message["Subject"] == "Cadarnhewch eich tanysgrifiad" and message["Reply-To"] == "help@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_body(("plain",)).get_content().strip() == "Dilynwch y ddolen."
    assert message.get_body(("html",)).get_content().strip() == "<p>Dilynwch y ddolen.</p>"


def test_notice_to_the_outbox_by_default(settings: Settings) -> None:
    send_notice(settings, to="new@example.com", subject="Confirm", text="Follow the link")
    (path,) = Path(settings.outbox_dir).iterdir()
    assert message_from_bytes(path.read_bytes(), policy=policy.default)["To"] == "new@example.com"


@pytest.mark.parametrize("to", ["a@example.com\r\nBcc: b@example.com", "a@example.com, b@example.com", "nobody",
                                "<>"])
def test_notice_refuses_anything_but_one_address(settings: Settings, to: str) -> None:
    with pytest.raises(SendError):
        send_notice(settings, to=to, subject="Confirm", text="x")
    assert not Path(settings.outbox_dir).exists()


def test_notice_refusal_is_reported(settings: Settings, smtp_server) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                           "smtp_security": "none"})
    smtp_server.rules["gone@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentFailure, match="No such user"):
        send_notice(settings, to="gone@example.com", subject="Confirm", text="x")
