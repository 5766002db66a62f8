"""The bounce mailbox: a Maildir folder, an mbox file, or an IMAP folder over TLS.

Each kind lists its messages as `(key, raw bytes)` and moves a handled one out
of the way, so running again never sees it twice:

- Maildir: renamed into the Maildir++ subfolder `.handled` (an IMAP server
  on the same Maildir shows it as the folder "handled");
- mbox: appended to `<file>.handled` beside it, then removed from the file,
  which is locked (fcntl and dot-lock, as MTAs do) while it is read;
- IMAP: `UID MOVE` (or COPY, delete, expunge) into the folder named by the
  URL's `handled` parameter, "Handled" by default, created when missing.

Elsewhere messages are copied before they are removed, so a crash in between
leaves a duplicate, never a loss; the duplicate is recognised by its Message-ID.
IMAP URLs: `imaps://user:password@host[:993]/INBOX?handled=Handled` for TLS
from the start, or `imap://...[:143]/...` for STARTTLS, which is then required.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from mailer.errors import BounceError

HANDLED = "handled"
IMAP_HANDLED = "Handled"
IMAP_TIMEOUT = 60.0


class Mailbox(Protocol):
    name: str

    def messages(self, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
        """Each message's key and bytes, or None instead of bytes for one over `max_bytes` (not read)."""

    def move_to_handled(self, key: str) -> None: ...

    def close(self) -> None: ...


@contextmanager
def open_mailbox(spec: str) -> Iterator[Mailbox]:
    """Open what `spec` names (an imap(s):// URL, a Maildir folder or an mbox file); `BounceError` if it cannot be read."""
    if spec.startswith(("imaps://", "imap://")):
        box: Mailbox = ImapMailbox(ImapLocation.from_url(spec))
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            box = MaildirMailbox(path)
        elif path.is_file():
            box = MboxMailbox(path)
        else:
            raise BounceError(f"bounce mailbox {spec}: no such Maildir folder or mbox file")
    try:
        yield box
    finally:
        box.close()


def display_name(spec: str) -> str:
    """The mailbox as it is safe to print: an IMAP URL without its password."""
    return re.sub(r"^(imaps?://[^:/@]*):[^@/]*@", r"\1:***@", spec)


class _OpenMessage(Protocol):
    """An open file, or the standard library's view of one message inside an mbox file."""

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


def _read(handle: _OpenMessage, max_bytes: int) -> bytes | None:
    with closing(handle):
        data = handle.read(max_bytes + 1)
    return data if len(data) <= max_bytes else None


class MaildirMailbox:
    """Read in place; a handled message is renamed into `.handled` (atomic: never lost, never in both)."""

    def __init__(self, path: Path):
        if not ((path / "cur").is_dir() and (path / "new").is_dir()):
            raise BounceError(f"bounce mailbox {path}: a folder, but not a Maildir (it has no cur/ and new/)")
        self.name = str(path)
        self.path = path
        self.handled: Path | None = None

    def messages(self, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
        files = [file for folder in ("new", "cur") for file in (self.path / folder).iterdir() if not file.name.startswith(".")]
        for file in sorted(files):
            try:
                data = _read(file.open("rb"), max_bytes)
            except FileNotFoundError:  # taken by someone else since it was listed
                continue
            yield f"{file.parent.name}/{file.name}", data

    def move_to_handled(self, key: str) -> None:
        if self.handled is None:
            mailbox.Maildir(self.path, create=False).add_folder(HANDLED)  # .handled/{cur,new,tmp} and its marker file
            self.handled = self.path / f".{HANDLED}"
        try:
            os.rename(self.path / key, self.handled / key)  # new/ stays new/, cur/ stays cur/, name and flags kept
        except FileNotFoundError:
            if (self.path / key).exists():
                raise  # it is the handled folder that is missing
            # Gone since it was read: another reader moved it, or a mail client moved it
            # from new/ to cur/, where the next run finds it recorded already and moves it.

    def close(self) -> None:
        pass


class MboxMailbox:
    def __init__(self, path: Path):
        with path.open("rb") as handle:
            start = handle.read(5)
        if start and start != b"From ":  # the standard library would read it as an empty mbox
            raise BounceError(f"bounce mailbox {path}: a file, but not an mbox (it does not start with a 'From ' line)")
        self.name = str(path)
        self.box = mailbox.mbox(path, create=False)
        self.handled_path = path.with_name(path.name + "." + HANDLED)
        try:
            self.box.lock()
        except mailbox.ExternalClashError:
            raise BounceError(f"bounce mailbox {path} is locked by another program; try again later") from None

    def messages(self, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
        for key in self.box.keys():
            yield str(key), _read(self.box.get_file(key), max_bytes)

    def move_to_handled(self, key: str) -> None:
        handled = mailbox.mbox(self.handled_path, create=True)
        handled.lock()
        try:
            handled.add(self.box.get_bytes(int(key)))  # type: ignore[arg-type]  # typeshed types mailbox keys as str; an mbox numbers them
            handled.flush()
        finally:
            handled.unlock()
            handled.close()
        self.box.remove(int(key))  # type: ignore[arg-type]  # as above

    def close(self) -> None:
        try:
            self.box.flush()  # rewrites the file without the handled messages
        finally:
            self.box.unlock()
            self.box.close()


@dataclass(frozen=True)
class ImapLocation:
    host: str
    port: int
    user: str
    password: str
    folder: str
    handled: str
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> ImapLocation:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not (parts.hostname and parts.username and parts.password is not None) or port == -1:
            raise BounceError(f"bounce mailbox {display_name(url)}: write it as imaps://user:password@host/FOLDER")
        implicit_tls = parts.scheme == "imaps"
        return cls(
            host=parts.hostname,
            port=port or (993 if implicit_tls else 143),
            user=unquote(parts.username),
            password=unquote(parts.password),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            handled=parse_qs(parts.query).get("handled", [IMAP_HANDLED])[0],
            implicit_tls=implicit_tls,
        )


class ImapMailbox:
    def __init__(self, location: ImapLocation):
        self.location = location
        self.name = f"imap{'s' if location.implicit_tls else ''}://{location.user}@{location.host}:{location.port}/{location.folder}"
        self.handled_ready = False
        context = ssl.create_default_context()
        self.client: imaplib.IMAP4
        try:
            if location.implicit_tls:
                self.client = imaplib.IMAP4_SSL(location.host, location.port, ssl_context=context, timeout=IMAP_TIMEOUT)
            else:
                self.client = imaplib.IMAP4(location.host, location.port, timeout=IMAP_TIMEOUT)
                self.client.starttls(ssl_context=context)
            self.client.login(location.user, location.password)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise BounceError(f"bounce mailbox {self.name}: {exc}") from None
        # Asked again: the list changes after login, and imaplib keeps the first one.
        capabilities = self._run("cannot list capabilities", self.client.capability)
        self.capabilities = set(capabilities[-1].decode().upper().split())
        self._run(f"cannot open folder {location.folder!r}", self.client.select, _quoted(location.folder))

    def messages(self, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
        for uid, size in self._sizes():
            if size > max_bytes:
                yield uid, None
                continue
            response = self._run(f"cannot fetch message {uid}", self.client.uid, "FETCH", uid, "(BODY.PEEK[])")
            body = next((item[1] for item in response if isinstance(item, tuple)), None)
            if body is not None:  # gone since it was listed
                yield uid, body

    def move_to_handled(self, key: str) -> None:
        folder = _quoted(self.location.handled)
        if not self.handled_ready:
            # A NO answer means it exists already; MOVE or COPY below says if it is really missing.
            self._run(f"cannot create folder {self.location.handled!r}", self.client.create, folder, must_succeed=False)
            self.handled_ready = True
        where = f"message {key} to {self.location.handled!r}"
        if "MOVE" in self.capabilities:
            self._run(f"cannot move {where}", self.client.uid, "MOVE", key, folder)
            return
        self._run(f"cannot copy {where}", self.client.uid, "COPY", key, folder)
        self._run(f"cannot delete message {key}", self.client.uid, "STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self.capabilities:
            self._run(f"cannot expunge message {key}", self.client.uid, "EXPUNGE", key)
        else:
            self._run("cannot expunge", self.client.expunge)

    def close(self) -> None:
        try:
            self.client.close()
            self.client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass  # the work is saved; a connection that dies on goodbye changes nothing

    def _sizes(self) -> list[tuple[str, int]]:
        """UID and size of every message, in one command."""
        response = self._run("cannot list messages", self.client.uid, "SEARCH", "ALL")
        if not response or not response[0]:
            return []
        response = self._run("cannot list message sizes", self.client.uid, "FETCH", "1:*", "(RFC822.SIZE)")
        sizes = []
        for line in response:
            text = line.decode() if isinstance(line, bytes) else ""
            uid, size = re.search(r"UID (\d+)", text), re.search(r"RFC822\.SIZE (\d+)", text)
            if uid and size:
                sizes.append((uid.group(1), int(size.group(1))))
        return sorted(sizes, key=lambda item: int(item[0]))

    def _run(self, what: str, command: Callable[..., tuple[str, list[Any]]], *args: str, must_succeed: bool = True) -> list[Any]:
        """One IMAP command; `BounceError` saying `what` failed when the server refuses or the connection breaks."""
        try:
            status, data = command(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise BounceError(f"bounce mailbox {self.name}: {what}: {exc}") from None
        if status != "OK" and must_succeed:
            detail = b" ".join(item for item in data if isinstance(item, bytes)).decode(errors="replace")
            raise BounceError(f"bounce mailbox {self.name}: {what}: {status} {detail}".rstrip())
        return data


def _quoted(name: str) -> str:
    """An IMAP quoted string, so folder names with spaces work."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
