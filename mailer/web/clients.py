"""Who is asking: the client address the limits count, told by a reverse proxy only when it is a trusted one.

A client can put anything in `X-Forwarded-For`. Only a connection from one of
`trusted_proxies` may say who the client is, and then uvicorn's reading of the
header applies: the nearest address that is not itself a trusted proxy, so a
value the client made up in front of the proxy's own is passed over.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

log = logging.getLogger("mailer.web")


class ForwardedFor:
    """Sets the request's client from `X-Forwarded-For` for trusted proxies; ignores it from anyone else."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[str]) -> None:
        self.app = app
        self.proxied = ProxyHeadersMiddleware(app, trusted_hosts=list(trusted))  # type: ignore[arg-type]
        self.networks = [ipaddress.ip_network(item, strict=False) for item in trusted]
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == b"x-forwarded-for" for name, _ in scope["headers"]):
            peer = scope["client"][0] if scope.get("client") else ""
            if self._trusted(peer):
                await self.proxied(scope, receive, send)  # type: ignore[arg-type]
                return
            if not self.warned:  # the sign of a proxy nobody listed: every client would share its limits
                self.warned = True
                log.warning("X-Forwarded-For from %s ignored: if that is your reverse proxy, add it to "
                            "trusted_proxies in mailer.toml", peer)
        await self.app(scope, receive, send)

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def client_key(request: Request) -> str:
    """The client a limit counts: an IPv4 address, or the /64 of an IPv6 one (one home or one server)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
