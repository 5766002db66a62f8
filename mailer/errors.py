"""One error tree for everything a user can get wrong or a server can refuse.

The CLI turns any `MailerError` into a one-line message and exit code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class MailerError(Exception):
    """Base of every error meant for a user's eyes."""


class ConfigError(MailerError):
    """A setting is missing or invalid; the message names the key and the file."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an issue file, located for the editor."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class IssueError(MailerError):
    """An issue file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RenderError(MailerError):
    """An email template cannot be rendered (Jinja or MJML); names the template and why."""


class StoreError(MailerError):
    """The subscriber store refused an operation."""


class DatabaseOutOfDate(StoreError):
    """The database schema is behind the code; `mailer db upgrade` fixes it."""


class NotFound(StoreError):
    """A subscriber, topic or send that does not exist."""


class SendError(MailerError):
    """A send cannot be created, started or changed in the way asked."""


class SendInterrupted(SendError):
    """The database or the disk failed while sending: nothing is lost, and the send resumes
    where it stopped. The CLI shows this one line; `--debug` adds the traceback."""


class TransportError(MailerError):
    """A message was not accepted. `code` is the SMTP reply code when there is one."""

    def __init__(self, message: str, *, code: int | None = None, recipient: str | None = None):
        super().__init__(message)
        self.code = code
        self.recipient = recipient


class TemporaryFailure(TransportError):
    """Worth retrying later: 4xx replies, timeouts."""


class PermanentFailure(TransportError):
    """Never retried: 5xx replies (except 552, which RFC 5321 says to treat as temporary)."""


class ConnectionFailure(TemporaryFailure, ConnectionError):
    """The server could not be reached or dropped the connection."""


class TokenError(MailerError):
    """A signed link is forged, truncated, tampered with or expired."""


class ScheduleError(MailerError):
    """A schedule request that cannot be honoured (time in the past, in a DST gap...)."""


class BounceError(MailerError):
    """A bounce mailbox cannot be read."""
