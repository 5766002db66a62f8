"""What every request and response goes through: size and time caps, HEAD, security headers, a safe access log.

Written as plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so it also
covers static files, error pages and streamed responses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mailer.web")

# The page's own CSS file and nothing else: no script at all, no inline style.
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
MAX_BODY_BYTES = 64 * 1024  # the largest form here (preferences with every topic) is a few KiB
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; browsers send 1-2 KiB (no cookies here)
BODY_SECONDS = 10.0  # to send that body, once the headers are in; a client still sending after it gets 408

# Paths whose second segment is a signed token: logged as /u/…, never in full.
_TOKEN_PATH = re.compile(r"^/(u|p|confirm|email)/[^/]+")


def redact(path: str) -> str:
    """The path as it may be logged: tokens replaced by an ellipsis, anything unprintable %-encoded.

    A path is the client's text: a line break in it (%0A) would forge log lines, an
    escape (%1b) would reach the terminal of whoever reads the log.
    """
    path = _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/…", path)
    return "".join(ch if ch.isprintable() else quote(ch) for ch in path)


class SecurityMiddleware:
    """Adds the security headers, answers HEAD as GET without the body, refuses headers too big (431)
    and bodies too big (413) or too slow (408), and logs one redacted line per request.

    `static_paths` are the exact paths of the static files, the only responses shared caches may keep.
    """

    def __init__(self, app: ASGIApp, *, https: bool, static_paths: frozenset[str] = frozenset(),
                 body_seconds: float = BODY_SECONDS) -> None:
        self.app = app
        self.static_paths = static_paths
        self.body_seconds = body_seconds
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

        if _header_size(scope) > MAX_HEADER_BYTES:
            await self._refuse(send, scope, started, 431, b"Request headers too large.\n")
            return
        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await self._refuse(send, scope, started, 413, b"Request too large.\n")
            return
        if scope.get("method") not in ("GET", "HEAD"):
            # Read the (small) body here, so one without Content-Length is measured too, and a slow one timed.
            try:
                async with asyncio.timeout(self.body_seconds):
                    body = await _read_body(receive, MAX_BODY_BYTES)
            except TimeoutError:
                await self._refuse(send, scope, started, 408, b"Request body too slow.\n")
                return
            if body is None:
                await self._refuse(send, scope, started, 413, b"Request too large.\n")
                return
            receive = _replay(body, receive)
        # RFC 9110: HEAD wherever GET works, answered as GET without the body.
        head = scope.get("method") == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = self._headers(list(message.get("headers", [])), scope["path"])
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, send_with_headers)
        finally:
            self._log(scope, status, started)

    async def _refuse(self, send: Send, scope: Scope, started: float, status: int, text: bytes) -> None:
        await _plain(send, status, self._headers([(b"connection", b"close")], scope["path"]), text)
        self._log(scope, status, started)

    def _headers(self, existing: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
        # Pages behind a token are personal: no shared cache may keep them. The static files may be kept.
        cache = b"public, max-age=86400" if path in self.static_paths else b"no-store"
        existing = [(name, _with_head(value) if name.lower() == b"allow" else value) for name, value in existing]
        present = {name.lower() for name, _ in existing}
        # A route may set its own CSP (the archive's email view needs inline styles) or caching.
        extra = [(name, value) for name, value in [*self.fixed, (b"cache-control", cache)] if name not in present]
        return [*existing, *extra]

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.0fms", scope.get("method", "-"), redact(scope.get("path", "")), status, elapsed)


def _with_head(allow: bytes) -> bytes:
    """An Allow header that lists HEAD wherever it lists GET."""
    methods = [method.strip() for method in allow.split(b",")]
    return b", ".join([*methods, b"HEAD"]) if b"GET" in methods and b"HEAD" not in methods else allow


def _header_size(scope: Scope) -> int:
    """About the size of the request line and headers as sent."""
    line = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
    return line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


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
