"""What every request and response goes through: size cap, security headers, a token-free access log.

Written as plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so it also
covers static files, error pages and streamed responses.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mailer.web")

# The page's own CSS file and nothing else: no script at all, no inline style.
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
STATIC_PATHS = ("/static/", "/favicon.ico")
MAX_BODY_BYTES = 64 * 1024  # the largest form here (preferences with every topic) is a few KiB

# Paths whose second segment is a signed token: logged as /u/…, never in full.
_TOKEN_PATH = re.compile(r"^/(u|p|confirm|email)/[^/]+")


def redact(path: str) -> str:
    """The path as it may be logged: tokens replaced by an ellipsis."""
    return _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/…", path)


class SecurityMiddleware:
    """Adds the security headers, refuses oversized bodies with 413 and logs one redacted line per request."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.fixed = [
            (b"content-security-policy", PAGE_CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.fixed.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await self._too_large(send, scope, started)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            # Read the (small) body here, so one without Content-Length is measured too.
            body = await _read_body(receive, MAX_BODY_BYTES)
            if body is None:
                await self._too_large(send, scope, started)
                return
            receive = _replay(body, receive)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = self._headers(list(message.get("headers", [])), scope["path"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._log(scope, status, started)

    async def _too_large(self, send: Send, scope: Scope, started: float) -> None:
        await _plain(send, 413, self._headers([], scope["path"]), b"Request too large.\n")
        self._log(scope, 413, started)

    def _headers(self, existing: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
        # Pages behind a token are personal: no shared cache may keep them. The stylesheet may be kept.
        cache = b"public, max-age=86400" if path.startswith(STATIC_PATHS) else b"no-store"
        present = {name.lower() for name, _ in existing}
        # A route may set its own CSP (the archive's email view needs inline styles) or caching.
        extra = [(name, value) for name, value in [*self.fixed, (b"cache-control", cache)] if name not in present]
        return [*existing, *extra]

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.0fms", scope.get("method", "-"), redact(scope.get("path", "")), status, elapsed)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits on the client as before."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _plain(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
