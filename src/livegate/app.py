"""`create_app(settings)`: wires the routers, database, upstream client and limiter."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from livegate.api import routes as api_routes
from livegate.api.ratelimit import Limiter
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
from livegate.tiktok.http import make_http_client
from livegate.tiktok.passport import PassportClient
from livegate.vault import Vault
from livegate.web import STATIC_DIR, Gateway, SecurityHeaders, favicon

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
    app.add_api_route("/favicon.ico", favicon, include_in_schema=False)
    app.add_middleware(SecurityHeaders)
    # Outside everything, /webcast/* included: sizes are checked before a request is read.
    app.wrap(RequestLimits.from_settings(settings))
    install_error_handlers(app)
    return app
