"""The app factory: one FastAPI app holding the settings, the database engine and the page renderer."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

from mailer.config import Settings
from mailer.store.db import make_engine, require_current
from mailer.web import admin, archive, clicks, media, preferences, subscribe, unsubscribe
from mailer.web.clients import ForwardedFor
from mailer.web.context import Web, web
from mailer.web.csrf import FormTokens
from mailer.web.links import InvalidLink
from mailer.web.pages import Pages
from mailer.web.ratelimit import PageLimits
from mailer.web.security import SecurityMiddleware


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """The subscriber pages for `settings`; `engine` defaults to one made from `settings.database_url`.

    Refuses (`DatabaseOutOfDate`) a database whose schema is not current.
    """
    engine = engine or make_engine(settings.database_url)
    require_current(engine)
    # No slash redirects: Starlette builds them from the client's Host header.
    app = FastAPI(title="mailer", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.web = Web(
        settings=settings,
        engine=engine,
        pages=Pages(settings),
        forms=FormTokens(settings),
        guard=PageLimits(link_days=settings.confirm_token_days),
    )
    static = settings.templates_path / "web" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    static_paths = frozenset({"/favicon.ico", *(f"/static/{path.relative_to(static).as_posix()}"
                                                for path in static.rglob("*") if path.is_file())})
    # Browsers ask for /favicon.ico whatever the page says (the archive's email view says nothing).
    app.add_api_route("/favicon.ico", lambda: FileResponse(static / "favicon.svg", media_type="image/svg+xml"),
                      include_in_schema=False)
    for module in (unsubscribe, preferences, subscribe, archive, media, clicks, admin):
        app.include_router(module.router)
    app.add_exception_handler(InvalidLink, _invalid_link)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(Exception, _server_error)
    app.add_middleware(ForwardedFor, trusted=settings.trusted_proxies)
    app.add_middleware(SecurityMiddleware, https=settings.base_url.startswith("https://"), static_paths=static_paths)
    return app


async def _invalid_link(request: Request, exc: Exception) -> Response:
    pages = web(request).pages
    return pages.render(request, pages.language(request), "invalid.html", status=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    pages = web(request).pages
    return pages.render(request, pages.language(request), "error.html", {"status": exc.status_code},
                        status=exc.status_code, headers=exc.headers)


async def _bad_request(request: Request, exc: Exception) -> Response:
    # A bad path parameter (/archive/abc) is no such page; a bad form field (a file for a text field) a bad request.
    assert isinstance(exc, RequestValidationError)
    in_path = any(error["loc"][:1] == ("path",) for error in exc.errors())
    return await _http_error(request, HTTPException(404 if in_path else 400))


async def _server_error(request: Request, exc: Exception) -> Response:
    pages = web(request).pages
    return pages.render(request, pages.language(request), "error.html", {"status": 500}, status=500)
