"""A small mailing list whose deliveries the corpus' bounces name, mailboxes to put them in, and a real IMAP server.

The corpus (tests/bounces/corpus/*.eml) was written for these tests in the
shapes real MTAs send. Its return paths are signed with the test settings'
secret key for deliveries 1 to 10 of one send, each to the subscriber listed
in PEOPLE under the same number, and its returned copies carry the Message-ID
`message_id(N)` of delivery N.
"""

from __future__ import annotations

import asyncio
import mailbox
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.store.db import new_session
from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus
from mailer.store.subscribers import add_subscriber
from tests.fixtures.waiting import wait_for

CORPUS = Path(__file__).with_name("corpus")
PEOPLE = {
    1: "rhys.jones@example.net",  # postfix-user-unknown
    2: "megan.morgan@cardiff.example.org",  # exim-user-unknown
    3: "dafydd.evans@old-council.example.org",  # m365-recipient-not-found (forwarded: only the return path names them)
    4: "sian.price@example.com",  # postfix-mailbox-full-delayed
    5: "gareth.hughes@example.com",  # arf-complaint
    6: "eleri.wyn@example.co.uk",  # out-of-office
    7: "owen.thomas@example.net",  # gmail-no-such-user (sent to the plain sender address: matched by address)
    8: "nia.roberts@example.org",  # malformed-mime
    9: "sian.lewis@example.cymru",  # wrong-charset
    10: "ifan.davies@legacy.example.net",  # unknown-charset
}


def message_id(number: int) -> str:
    """The Message-ID delivery `number` went out with (the corpus' returned copies show it)."""
    return f"<174108252901.1.{number}@example.org>"


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def huge_bounce() -> bytes:
    """A Gmail-style bounce carrying a 6 MiB attachment: over the reader's limit (made here, not kept in git)."""
    message = EmailMessage()
    message["From"] = "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"
    message["To"] = "bounces+7-f0a8e93ebe316e75@example.org"
    message["Subject"] = "Delivery Status Notification (Failure)"
    message["Message-ID"] = "<huge-attachment-bounce@mx.google.com>"
    message.set_content("Your message wasn't delivered to owen.thomas@example.net: 550 5.1.1 no such user.")
    message.add_attachment(b"\0" * (6 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="slides.pptx")
    message.set_boundary("huge-attachment")
    return message.as_bytes()


@pytest.fixture
def mailing(engine) -> dict[str, int]:
    """The ten subscribers of PEOPLE (email -> id) and send 1, whose delivery N went to person N."""
    with new_session(engine) as session:
        ids = {email: add_subscriber(session, email=email).id for email in PEOPLE.values()}
        send = Send(issue_slug="2025-03", title="All in this Together: March 2025", status=SendStatus.finished, content=b"{}")
        session.add(send)
        session.flush()
        for number, email in PEOPLE.items():
            session.add(Delivery(id=number, send_id=send.id, subscriber_id=ids[email], email=email, status=DeliveryStatus.sent,
                                 message_id=message_id(number)))
        session.commit()
    return ids


@pytest.fixture
def maildir(workdir: Path) -> Path:
    path = workdir / "Maildir"
    mailbox.Maildir(path, create=True).close()
    return path


def deliver(path: Path, *messages: bytes) -> None:
    """Put messages into a Maildir the way an MTA does (tmp, then new)."""
    box = mailbox.Maildir(path, create=False)
    for data in messages:
        box.add(data)
    box.close()


def remaining(path: Path, folder: str | None = None) -> list[bytes]:
    box = mailbox.Maildir(path, create=False)
    if folder is not None:
        box = box.get_folder(folder)
    return [box.get_bytes(key) for key in sorted(box.keys())]


@pytest.fixture
def cli(settings: Settings, engine) -> Callable[..., Result]:
    """Run `mailer ...` in-process against this test's database, as a user would."""
    env = {
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_SENDER_ADDRESS": settings.sender_address,
    }

    def run(*args: str) -> Result:
        cli_settings.cache_clear()
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        cli_settings.cache_clear()
        return result

    return run


# ---- a real IMAP server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _wait_for(port: int) -> None:
    wait_for(lambda: _answers(port), f"the IMAP server on port {port}")


class TLSFront:
    """Implicit TLS (imaps, port 993 style) in front of a plain IMAP port, as stunnel or a load balancer does it."""

    def __init__(self, context: ssl.SSLContext, backend_port: int):
        self.context, self.backend_port, self.port = context, backend_port, _free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        await asyncio.gather(self._pipe(reader, backend_writer), self._pipe(backend_reader, writer))

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context), self.loop
        ).result(timeout=10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class IMAPServer:
    """pymap (an IMAP server in Python, in-memory store) on loopback, with STARTTLS and an implicit-TLS front."""

    port: int
    tls_port: int
    context: ssl.SSLContext  # a client context trusting the test CA
    user: str = "bounces"
    password: str = "p@ss word"

    def url(self, folder: str = "INBOX", *, implicit_tls: bool = False, query: str = "") -> str:
        scheme, port = ("imaps", self.tls_port) if implicit_tls else ("imap", self.port)
        return f"{scheme}://{self.user}:p%40ss%20word@127.0.0.1:{port}/{folder}{'?' + query if query else ''}"

    def client(self):  # type: ignore[no-untyped-def]
        import imaplib

        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.starttls(ssl_context=self.context)
        client.login(self.user, self.password)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        for data in messages:
            status, _ = client.append(folder, None, None, data)
            assert status == "OK"
        client.logout()

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        client = self.client()
        status, _ = client.select(f'"{folder}"', readonly=True)
        found: list[bytes] = []
        if status == "OK":
            _, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
            found = [item[1] for item in data if isinstance(item, tuple)]
        client.logout()
        return found


@pytest.fixture
def imap_server(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IMAPServer]:
    trustme = pytest.importorskip("trustme")
    pymap = shutil.which("pymap", path=str(Path(sys.executable).parent))
    if pymap is None:
        pytest.skip("pymap (test dependency) is not installed")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    key_file, cert_file, ca_file = workdir / "imap.key", workdir / "imap.pem", workdir / "ca.pem"
    certificate.private_key_pem.write_to_path(str(key_file))
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # how a site with its own CA makes the reader trust it
    port = _free_port()
    server = IMAPServer(port=port, tls_port=0, context=ssl.create_default_context(cafile=str(ca_file)))
    process = subprocess.Popen(
        [pymap, "--host", "127.0.0.1", "--port", str(port), "--cert", str(cert_file), "--key", str(key_file),
         "dict", "--demo-user", server.user, "--demo-password", server.password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    front_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(front_context)
    front = TLSFront(front_context, port)
    try:
        _wait_for(port)
        front.start()
        server.tls_port = front.port
        yield server
    finally:
        front.stop()
        process.terminate()
        process.wait(timeout=10)
