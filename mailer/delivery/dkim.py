"""DKIM signatures that dkimpy verifies, with the RSA step done by OpenSSL.

dkimpy's own RSA is pure Python (about 9 ms a signature, more than everything
else a message costs). So dkimpy still does every step that must match a
verifier byte for byte (relaxed canonicalisation, header selection and hashing,
folding) and only the RSA step goes to `cryptography` (about 0.4 ms).
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import Relaxed

from mailer.config import Settings
from mailer.errors import ConfigError

HeaderField = tuple[bytes, bytes]  # (name, value as on the wire: b" value\r\n"), as dkimpy parses them

# What a signature covers, when present. The second round of names signs them
# once more than they occur, so nobody can add another From or List-Unsubscribe
# without breaking the signature (RFC 6376 section 8.15).
SIGNED = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id", b"list-unsubscribe",
          b"list-unsubscribe-post", b"mime-version", b"content-type")
OVERSIGNED = (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")
KEY_BITS = 2048


class DkimSigner:
    """Signs messages for one domain and selector with relaxed/relaxed rsa-sha256."""

    def __init__(self, *, domain: str, selector: str, private_key: rsa.RSAPrivateKey) -> None:
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.private_key = private_key

    def signature(self, headers: list[HeaderField], body: bytes, *, canonical_body: bool = False) -> HeaderField:
        """The DKIM-Signature header for a message given as its header list and body.

        `canonical_body` says the body is already in relaxed canonical form (no
        trailing or repeated spaces, one final CRLF), which skips the costliest step.
        """
        present = {name.lower() for name, _ in headers}
        include = [name for name in SIGNED if name in present] + list(OVERSIGNED)
        canonical = body if canonical_body else Relaxed.canonicalize_body(body)
        body_hash = base64.b64encode(hashlib.sha256(canonical).digest())
        fields = (
            b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + self.domain + b"; s=" + self.selector
            + b"; t=" + str(int(time.time())).encode() + b"; h=" + b" : ".join(include)
            + b"; bh=" + body_hash + b"; b="
        )
        unsigned = (b"DKIM-Signature", b" " + dkim.fold(fields, namelen=len(b"DKIM-Signature")))
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, Relaxed, Relaxed.canonicalize_headers(headers), include, unsigned, None)
        signed = self.private_key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        value = dkim.fold(fields + base64.b64encode(signed), namelen=len(b"DKIM-Signature"))
        return b"DKIM-Signature", b" " + value + b"\r\n"

    def sign(self, message: bytes) -> bytes:
        """`message` with its signature prepended (for messages not built by `message.py`)."""
        headers, body = dkim.rfc822_parse(message)
        name, value = self.signature([(n, v) for n, v in headers], body)
        return name + b":" + value + message


def signer_for(settings: Settings) -> DkimSigner | None:
    """The signer the settings ask for, or None when DKIM is not configured."""
    if not (settings.dkim_selector and settings.dkim_private_key):
        return None
    path = Path(settings.dkim_private_key)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"dkim_private_key: cannot read an RSA private key from {path}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"dkim_private_key: {path} is not an RSA key")
    return DkimSigner(domain=settings.sender_domain, selector=settings.dkim_selector, private_key=key)


def dns_record(public_key: rsa.RSAPublicKey) -> str:
    """The TXT record value that publishes `public_key`."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def generate_key(folder: Path, selector: str) -> tuple[Path, Path, str]:
    """Write `<selector>.private` (PEM, PKCS#1, readable by its owner only) and `<selector>.public`.

    Returns both paths and the TXT record value to publish.
    """
    private = folder / f"{selector}.private"
    public = folder / f"{selector}.public"
    for path in (private, public):
        if path.exists():
            raise ConfigError(f"{path} already exists; not overwriting a key")
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    private.touch(mode=0o600)
    private.write_bytes(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public, dns_record(key.public_key())
