"""uvicorn set up for the pages: no access log of its own (it would print tokens), ours instead.

`SecurityMiddleware` logs one line per request with every token cut out, on
the `mailer.web` logger, which this configuration sends to uvicorn's console
handler.
"""

from __future__ import annotations

import copy

import uvicorn
from sqlalchemy import Engine

from mailer.config import Settings
from mailer.web.app import create_app


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
        proxy_headers=True,  # client addresses (for rate limits) from X-Forwarded-For, trusted from 127.0.0.1 only
        server_header=False,
    )
