"""uvicorn set up for the pages: no access log of its own (it would print tokens), ours instead; bounded.

`SecurityMiddleware` logs one line per request with every token cut out, on
the `mailer.web` logger, which this configuration sends to uvicorn's console
handler.

uvicorn's defaults wait for ever on a client sending its headers slowly. The
limits below bound what one process takes on; the time limits on a slow client
(request line, headers, reading the response) are the reverse proxy's: see
docs/web.md. `SecurityMiddleware` bounds the time to send a body.
"""

from __future__ import annotations

import copy

import uvicorn
from sqlalchemy import Engine

from mailer.config import Settings
from mailer.web.app import create_app
from mailer.web.security import MAX_HEADER_BYTES

CONCURRENCY = 64              # connections and requests at once; a request beyond them gets 503 at once
KEEP_ALIVE_SECONDS = 5        # an idle connection is closed after this
BACKLOG = 128                 # connections the system holds before the process accepts them


def server_config(settings: Settings, *, host: str | None = None, port: int | None = None,
                  engine: Engine | None = None) -> uvicorn.Config:
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["mailer.web"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return uvicorn.Config(
        create_app(settings, engine=engine),
        host=host or settings.web_host,
        port=port or settings.web_port,
        access_log=False,
        log_config=log_config,
        proxy_headers=False,  # the app reads X-Forwarded-For itself, from `trusted_proxies` only (web/clients.py)
        server_header=False,
        http="h11",  # the parser whose header size limit can be set
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # headers still arriving; complete ones: SecurityMiddleware
        limit_concurrency=CONCURRENCY,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        backlog=BACKLOG,
    )
