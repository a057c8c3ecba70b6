"""`create_app(settings)`: wires the routers, database, upstream client and limiter."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from livegate.api import routes as api_routes
from livegate.api.ratelimit import Limiter
from livegate.config import Settings
from livegate.dashboard import routes as dashboard_routes
from livegate.db.engine import Database
from livegate.heap import freeze_startup_objects
from livegate.housekeeping import purge_loop
from livegate.limits import RequestLimits
from livegate.login import routes as login_routes
from livegate.login.service import LoginService
from livegate.oauth import routes as oauth_routes
from livegate.oauth.service import OAuthService
from livegate.tiktok.http import make_http_client
from livegate.tiktok.passport import PassportClient
from livegate.vault import Vault
from livegate.web import STATIC_DIR, Gateway, SecurityHeaders, error_response

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Gateway:
    settings = settings or Settings()
    database = database or Database(settings.db_url)
    vault = Vault(settings.server_keys)
    http = make_http_client(settings)
    oauth = OAuthService(settings, database, vault)
    passport = PassportClient(http, settings)
    logins = LoginService(settings, database, oauth, passport)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()
        async with anyio.create_task_group() as tg:
            if settings.purge_interval > 0:
                tg.start_soon(purge_loop, settings, database)
            tg.start_soon(app.state.webcast_api.watch_credentials)
            tg.start_soon(app.state.webcast_api.relays.watch)
            yield
            tg.cancel_scope.cancel()
        await app.state.webcast_api.aclose()
        await http.aclose()

    app = Gateway(
        trusted_proxies=settings.trusted_proxies,
        title="livegate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.vault = vault
    app.state.http = http
    app.state.oauth = oauth
    app.state.passport = passport
    app.state.logins = logins
    app.state.limiter = Limiter(settings)  # every rate limit: webcast, dashboard, OAuth

    app.include_router(oauth_routes.router)
    app.include_router(login_routes.router)
    # /webcast/*: the resource server (upstream webcast client, limiter, WebSocket proxy).
    api_routes.install(app)
    # The dashboard and /account; also sets logins.on_account_login.
    dashboard_routes.install(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.add_middleware(SecurityHeaders)
    # Outside everything, /webcast/* included: sizes are checked before a request is read.
    app.wrap(RequestLimits.from_settings(settings))
    _install_error_handlers(app)
    return app


def _error(
    request: Request,
    status: int,
    error: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the dialect of the route asked for (web.error_response)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return error_response(
        request.url.path, ctype == "application/json", status, error, message, headers
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
        )
        return _error(request, 400, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = "not_found" if exc.status_code == 404 else "invalid_request"
        return _error(request, exc.status_code, error, str(exc.detail), exc.headers)

    @app.exception_handler(DataError)
    async def refused_data(request: Request, exc: DataError) -> Response:
        # The database refused a value the request carried (PostgreSQL: a NUL character,
        # a number out of range): the request was bad, not the server.
        log.info("database refused request data on %s: %s", request.url.path, type(exc.orig))
        message = "The request contains a value that cannot be stored."
        return _error(request, 400, "invalid_request", message)

    @app.exception_handler(RecursionError)
    @app.exception_handler(UnicodeError)
    async def unreadable_input(request: Request, exc: Exception) -> Response:
        # A backstop: input nested too deep, or text that cannot be encoded, is refused where
        # it is read (bodies.py, ids.py, api/schemas.py). Should a path still let some through,
        # that is the request's fault, not the server's; the log keeps the trace to fix it.
        log.warning("%s from input on %s", type(exc).__name__, request.url.path, exc_info=exc)
        message = "The request holds a value livegate cannot read."
        return _error(request, 400, "invalid_request", message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a traceback to the caller; the log has it, redacted by the formatter.
        log.exception("unhandled %s on %s", type(exc).__name__, request.url.path)
        return _error(request, 500, "server_error", "internal error")
