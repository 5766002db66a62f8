"""SMTP over STARTTLS and implicit TLS, with login, against a real aiosmtpd server and a self-signed certificate
that the test makes the client trust (SSL_CERT_FILE), so certificate checking stays on."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailer.delivery.transport import SMTPTransport
from mailer.errors import ConnectionFailure
from tests.fixtures.smtp import RecordingHandler, free_port

MESSAGE = b"From: news@example.org\r\nTo: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    # Valid for ages, as trustme's are: OpenSSL checks it against the machine's clock, which a test may
    # not move (tests/conftest.py moves Python's), and a test certificate needs no expiry.
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(datetime.datetime(2000, 1, 1))
            .not_valid_after(datetime.datetime(3000, 1, 1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    return cert_path, key_path


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"news", b"s3cret")
    return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_login(certificate: tuple[Path, Path], security: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler = RecordingHandler()
    if security == "starttls":
        tls = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    else:  # aiosmtpd does not count implicit TLS as TLS for AUTH; the connection is encrypted all the same
        tls = {"ssl_context": context, "auth_require_tls": False}
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=authenticate, **tls)
    controller.start()
    try:
        client = SMTPTransport(host="127.0.0.1", port=controller.port, security=security, username="news",
                               password="s3cret", timeout=5)
        assert client.send("b@example.org", "a@example.com", MESSAGE).code == 250
        assert client.send("b@example.org", "c@example.com", MESSAGE).code == 250
        client.close()
        assert [m.rcpt_tos for m in handler.messages] == [["a@example.com"], ["c@example.com"]]
        assert handler.connections == (2 if security == "starttls" else 1)  # EHLO again after STARTTLS

        wrong = SMTPTransport(host="127.0.0.1", port=controller.port, security=security, username="news",
                              password="nope", timeout=5)
        with pytest.raises(ConnectionFailure, match="535"):
            wrong.send("b@example.org", "a@example.com", MESSAGE)
    finally:
        controller.stop()


def test_an_untrusted_certificate_is_refused(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    monkeypatch.delenv("SSL_CERT_FILE")
    controller = Controller(RecordingHandler(), hostname="127.0.0.1", port=free_port(), tls_context=context)
    controller.start()
    try:
        client = SMTPTransport(host="127.0.0.1", port=controller.port, security="starttls", timeout=5)
        with pytest.raises(ConnectionFailure, match="CERTIFICATE_VERIFY_FAILED"):
            client.send("b@example.org", "a@example.com", MESSAGE)
    finally:
        controller.stop()
