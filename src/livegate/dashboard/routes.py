"""The developer dashboard (/dashboard) and the end users' connected apps (/account).

`ROUTERS` are the three route modules' routers: `signin_routes` (sign-up, sign-in,
sign-out), `developer_routes` (clients, usage, API keys) and `account_routes` (/account).
`install` wires them into the app.
"""

from __future__ import annotations

from fastapi import FastAPI

from livegate.dashboard import account as account_service
from livegate.dashboard import account_routes, developer_routes, signin_routes
from livegate.dashboard.browser import DashboardState
from livegate.dashboard.strings import STRINGS
from livegate.errors import use_error_page

ROUTERS = (signin_routes.router, developer_routes.router, account_routes.router)

ERROR_PAGE = "dashboard/error.html"


def install(app: FastAPI) -> None:
    """The dashboard's state, its error page, the /account sign-in hook, the routes."""
    settings = app.state.settings
    app.state.dashboard = DashboardState(
        settings, app.state.logins, app.state.limiter, app.state.vault
    )
    app.state.logins.on_account_login = account_service.make_on_account_login(settings)
    for prefix in ("/dashboard", account_service.ACCOUNT_PATH):
        use_error_page(prefix, ERROR_PAGE, {"t": STRINGS})
    for router in ROUTERS:
        app.include_router(router)
