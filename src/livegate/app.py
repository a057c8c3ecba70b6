"""`create_app(settings)`: wires the routers, database, upstream client and limiter."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from livegate import observability
from livegate.config import Settings
from livegate.dashboard import routes as dashboard_routes
from livegate.db.engine import Database
from livegate.errors import install_error_handlers
from livegate.heap import freeze_startup_objects
from livegate.housekeeping import purge_loop
from livegate.limits import RequestLimits
from livegate.login import routes as login_routes
from livegate.login.service import LoginService
from livegate.oauth import routes as oauth_routes
from livegate.oauth.service import OAuthService
from livegate.ratelimit import Limiter
from livegate.tiktok.http import make_http_client
from livegate.tiktok.passport import PassportClient
from livegate.vault import Vault
from livegate.web import STATIC_DIR, SecurityHeaders, favicon
from livegate.webcast import events_routes
from livegate.webcast import routes as webcast_routes

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
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
            tg.start_soon(app.state.webcast.relays.watch)
            tg.start_soon(app.state.webcast.events.counter.renew)
            yield
            tg.cancel_scope.cancel()
        await app.state.webcast.aclose()
        await http.aclose()
        await database.aclose()

    app = FastAPI(
        title="livegate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # livegate exports no OpenTelemetry (its metrics are Prometheus'); left on, FastAPI
        # looks for OpenTelemetry providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.db = database
    app.state.vault = vault
    app.state.http = http
    app.state.oauth = oauth
    app.state.passport = passport
    app.state.logins = logins
    app.state.limiter = Limiter(settings)  # every rate limit: webcast, dashboard, OAuth

    # /webcast/*: the resource server (upstream webcast client, WebSocket relay). First: the
    # router tries routes in order, and the fetch route is the one every LIVE poll takes.
    webcast_routes.install(app)
    app.include_router(events_routes.router)
    app.include_router(events_routes.stream_router)
    app.include_router(oauth_routes.router)
    app.include_router(login_routes.router)
    # The dashboard and /account; also sets logins.on_account_login.
    dashboard_routes.install(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.add_api_route("/favicon.ico", favicon, summary="The site icon (SVG)", tags=["pages"])
    add_middleware(app, settings)
    # /healthz, /readyz, /metrics; the request id and HTTP metrics, outside everything.
    observability.install(app, settings)
    install_error_handlers(app)
    return app


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Around every route, outermost last: the forwarded-header trust, the security headers,
    the size limits (checked before a request is read)."""
    app.add_middleware(
        RequestLimits, max_body=settings.max_body_bytes, max_head=settings.max_header_bytes
    )
    app.add_middleware(SecurityHeaders)
    if settings.trusted_proxies:
        # For a request whose peer is one of `trusted_proxies` (IPs or CIDRs), the client
        # address and scheme come from X-Forwarded-For and X-Forwarded-Proto. Here, not in
        # uvicorn's config, so that every server running the app (`livegate serve`, the
        # demo, the tests') trusts the same proxies; they run uvicorn with
        # `proxy_headers=False`, as uvicorn's own default trusts 127.0.0.1, which would let
        # any local process choose its address.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
