"""What every route needs, made once per app, and the per-request database session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.config import Settings
from mailer.store.db import new_session
from mailer.web.csrf import FormTokens
from mailer.web.pages import Pages
from mailer.web.ratelimit import PageLimits


@dataclass
class Web:
    settings: Settings
    engine: Engine
    pages: Pages
    forms: FormTokens
    guard: PageLimits


def web(request: Request) -> Web:
    made: Web = request.app.state.web  # set by `create_app`
    return made


def session(request: Request) -> Iterator[Session]:
    """One session per request; routes commit what they change."""
    with new_session(web(request).engine) as db:
        yield db


DB = Annotated[Session, Depends(session)]
