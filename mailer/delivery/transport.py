"""Transports: how finished message bytes leave the process.

The engine needs only `send(sender, recipient, message, key=...) -> Reply` and
`close()` (the `Transport` protocol); SMTP and the outbox folder are the two adapters.
Both report an acceptance as a `Reply` with its SMTP code, and every refusal as a
`TransportError` subclass carrying its code, sorted the way RFC 5321 asks: 4xx and
552 are temporary, other 5xx permanent, and anything that breaks the connection
(421, timeouts, drops, an outbox that cannot be written) is a `ConnectionFailure`.
"""

from __future__ import annotations

import os
import secrets
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mailer.config import Settings
from mailer.delivery.owners import owner_is_dead, this_process
from mailer.errors import ConnectionFailure, PermanentFailure, TemporaryFailure, TransportError


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's acceptance: its code (250) and words."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes, *, key: str | None = None) -> Reply:
        """Hand over one message for one recipient; return the server's acceptance.

        `key` names the message for good (a delivery): a transport that stores messages
        replaces an earlier copy with the same key instead of adding a second one.
        """
        ...

    def close(self) -> None: ...


def open_transport(settings: Settings) -> Transport:
    """The configured transport: SMTP, or the outbox folder when `smtp_host` is empty."""
    if not settings.smtp_host:
        return OutboxTransport(Path(settings.outbox_dir))
    return SMTPTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout,
    )


def tidy(settings: Settings) -> None:
    """Before a run: remove what killed runs left behind (the outbox's temporary files)."""
    if not settings.smtp_host and Path(settings.outbox_dir).is_dir():
        OutboxTransport(Path(settings.outbox_dir)).remove_stale()


def refusal(code: int, reply: bytes | str, recipient: str | None = None) -> TransportError:
    """The error for an SMTP reply that is not a success."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{code} {text}".replace("\n", " ").strip()
    if code == 421:  # the server is closing the connection
        return ConnectionFailure(message, code=code, recipient=recipient)
    if 400 <= code < 500 or code == 552:
        return TemporaryFailure(message, code=code, recipient=recipient)
    if 500 <= code < 600:
        return PermanentFailure(message, code=code, recipient=recipient)
    return TemporaryFailure(f"unexpected reply: {message}", code=code, recipient=recipient)


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA payload: CRLF lines (as the builders make them), leading dots doubled, and the final dot."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SMTPTransport:
    """One persistent SMTP connection, opened on first use and reopened after the server closes it.

    Not thread-safe: the engine gives each sending thread its own.
    """

    def __init__(self, *, host: str, port: int, security: str = "starttls", username: str = "",
                 password: str = "", timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            assert client.sock is not None  # connected by the constructor
            # Without TCP_NODELAY, Nagle's algorithm plus delayed ACKs stall small
            # commands after STARTTLS to ~40 ms each.
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if self.username:
                client.login(self.username, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def send(self, sender: str, recipient: str, message: bytes, *, key: str | None = None) -> Reply:
        try:
            if self._client is None:
                self._client = self._connect()
            client = self._client
            if client.has_extn("pipelining"):
                code, reply = self._pipelined(client, sender, recipient, message)
            else:
                code, reply = self._stepwise(client, sender, recipient, message)
            if code != 250:
                raise refusal(code, reply, recipient)
            return Reply(code, reply.decode("utf-8", "replace"))
        except TransportError as exc:
            self._recover(exc)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise self._connection_failure(exc, recipient) from None

    def check(self) -> str:
        """Connect, greet, STARTTLS and log in as configured, then quit: `mailer config check`.

        Returns the server's greeting; raises `ConnectionFailure` saying what went wrong.
        """
        try:
            client = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._connection_failure(exc) from None
        greeting = (client.ehlo_resp or b"").decode("utf-8", "replace").splitlines()[0]
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        return greeting

    def _connection_failure(self, exc: smtplib.SMTPException | OSError, recipient: str | None = None) -> ConnectionFailure:
        """A failure of the connection itself: no message can go this way until it is fixed."""
        if isinstance(exc, smtplib.SMTPResponseException):  # login or STARTTLS refused
            reply = str(refusal(exc.smtp_code, exc.smtp_error))
            return ConnectionFailure(f"{self.host}:{self.port}: {reply}", code=exc.smtp_code)
        what = str(exc) or type(exc).__name__  # drops, timeouts, refused connections, TLS errors
        return ConnectionFailure(f"{self.host}:{self.port}: {what}", recipient=recipient)

    @staticmethod
    def _stepwise(client: smtplib.SMTP, sender: str, recipient: str, message: bytes) -> tuple[int, bytes]:
        """MAIL, RCPT, DATA, each waiting for its reply."""
        code, reply = client.mail(sender)
        if code != 250:
            raise refusal(code, reply, recipient)
        code, reply = client.rcpt(recipient)
        if code not in (250, 251):
            raise refusal(code, reply, recipient)
        client.putcmd("data")
        code, reply = client.getreply()
        if code != 354:
            raise refusal(code, reply, recipient)
        client.send(_dot_stuffed(message))
        return client.getreply()

    @staticmethod
    def _pipelined(client: smtplib.SMTP, sender: str, recipient: str, message: bytes) -> tuple[int, bytes]:
        """MAIL, RCPT and DATA in one packet (RFC 2920): two round trips a message instead of four."""
        client.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        mail, rcpt, data = client.getreply(), client.getreply(), client.getreply()
        refused = (refusal(*mail, recipient) if mail[0] != 250
                   else refusal(*rcpt, recipient) if rcpt[0] not in (250, 251) else None)
        if data[0] != 354:
            raise refused or refusal(*data, recipient)
        if refused:  # a server that says 354 with no valid recipient gets an empty message
            client.send(b".\r\n")
            client.getreply()
            raise refused
        client.send(_dot_stuffed(message))
        return client.getreply()

    def _recover(self, error: TransportError) -> None:
        """After a refusal, reset the transaction; a broken connection is closed and reopened next time."""
        if self._client is None:
            return
        if isinstance(error, ConnectionFailure):
            self.close()
            return
        try:
            self._client.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


TEMPORARY = ".tmp."


class OutboxTransport:
    """Writes each message into a folder, the way a receiving server stores it.

    A delivery's message is `<delivery id>.eml` (six digits or more), so sending it again
    after a crash replaces the file instead of adding a copy: the outbox holds each
    delivery once. Other messages (notices) get a name of their own, in the order written. A file appears
    complete or not at all: it is written under a temporary name that names this process
    (`.tmp.<process>.<thread>`) and renamed into place. `remove_stale` deletes the
    temporary files of processes that have ended (killed mid-write).
    `Return-Path` and `Delivered-To` record the envelope, as a mailbox would.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, sender: str, recipient: str, message: bytes, *, key: str | None = None) -> Reply:
        name = f"{key}.eml" if key else f"notice-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}-{secrets.token_hex(2)}.eml"
        envelope = f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode()
        temporary = self.folder / f"{TEMPORARY}{this_process()}.{threading.get_ident()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(envelope + message)
            os.replace(temporary, self.folder / name)
        except OSError as exc:
            _discard(temporary)
            raise ConnectionFailure(f"cannot write to outbox {self.folder}: {exc}", recipient=recipient) from None
        return Reply(250, f"written to {self.folder / name}")

    def remove_stale(self) -> int:
        """Delete the temporary files of processes that have ended; returns how many."""
        stale = [path for path in self.folder.glob(f"{TEMPORARY}*")
                 if owner_is_dead(path.name.removeprefix(TEMPORARY).rpartition(".")[0])]
        for path in stale:
            _discard(path)
        return len(stale)

    def close(self) -> None:
        """Nothing to close: each message is its own file."""


def _discard(path: Path) -> None:
    """Remove a file if it is there; a failure to (the folder went away) must not hide why we got here."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
