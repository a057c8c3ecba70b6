"""FastAPI dependencies of the dashboard and /account.

The database (`Db`), the browser and who it is signed in as (`DeveloperBrowser`,
`AccountBrowser`, `SignedIn`, `SignedInAccount`), the CSRF check every POST passes before
anything else (installed on each router), and ids read from the path or query. Refusals are
`LivegateError`s, which the app renders as the dashboard's error page; "sign in first" is a
303 to the sign-in page, the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from livegate.dashboard import account as account_service
from livegate.dashboard import service, sessions
from livegate.dashboard.browser import Browser, DashboardState
from livegate.dashboard.csrf import COOKIE as CSRF_COOKIE
from livegate.dashboard.csrf import FIELD as CSRF_FIELD
from livegate.dashboard.csrf import CsrfSigner
from livegate.dashboard.strings import STRINGS
from livegate.db.engine import Database
from livegate.db.models import Developer, TikTokAccount
from livegate.errors import LivegateError
from livegate.ids import BadId, parse_id

T = TypeVar("T")
P = ParamSpec("P")

LOGIN_PAGE = "/dashboard/login"
ACCOUNT_PAGE = account_service.ACCOUNT_PATH


def dashboard_state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


State = Annotated[DashboardState, Depends(dashboard_state)]


class Transactions:
    """Runs a service function `fn(session, ...)` in the threadpool, in one transaction that is
    committed before the answer goes out (so the page a redirect leads to sees it)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def __call__(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        def run() -> T:
            with self.database.session() as session:
                return fn(session, *args, **kwargs)

        return await run_in_threadpool(run)


def transactions(request: Request) -> Transactions:
    return Transactions(request.app.state.db)


Db = Annotated[Transactions, Depends(transactions)]


def _browser(request: Request, state: DashboardState) -> Browser:
    cookie = request.cookies.get(CSRF_COOKIE)
    return Browser(
        request=request,
        state=state,
        csrf_cookie=cookie or CsrfSigner.new_cookie(),
        new_csrf_cookie=not cookie,
    )


async def developer_browser(request: Request, state: State, db: Db) -> Browser:
    """The browser on /dashboard, with the developer it is signed in as, if any."""
    browser = _browser(request, state)
    token = request.cookies.get(sessions.DEVELOPER_COOKIE)
    found = await db(service.signed_in, token, state.settings.dashboard_session_ttl)
    if found is not None:
        browser.session, browser.developer = found
    return browser


async def account_browser(request: Request, state: State, db: Db) -> Browser:
    """The browser on /account, with the TikTok account it is signed in as, if any."""
    browser = _browser(request, state)
    token = request.cookies.get(sessions.ACCOUNT_COOKIE)
    found = await db(account_service.signed_in, token, state.settings.account_session_ttl)
    if found is not None:
        browser.session, browser.account = found
    return browser


DeveloperBrowser = Annotated[Browser, Depends(developer_browser)]
AccountBrowser = Annotated[Browser, Depends(account_browser)]


async def _check_csrf(request: Request, browser: Browser) -> None:
    if request.method in ("GET", "HEAD"):
        return
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    if not browser.csrf_ok(presented if isinstance(presented, str) else None):
        raise LivegateError(403, "invalid_csrf", STRINGS["bad_csrf"])


async def developer_csrf(request: Request, browser: DeveloperBrowser) -> None:
    """Every POST under /dashboard: the CSRF token first, before anything else happens."""
    await _check_csrf(request, browser)


async def account_csrf(request: Request, browser: AccountBrowser) -> None:
    """Every POST under /account: the CSRF token first, before anything else happens."""
    await _check_csrf(request, browser)


def _sign_in_first(page: str) -> LivegateError:
    return LivegateError(
        303, "login_required", STRINGS["sign_in_first"], headers={"Location": page}
    )


async def signed_in_developer(browser: DeveloperBrowser) -> Developer:
    if browser.developer is None:
        raise _sign_in_first(LOGIN_PAGE)
    return browser.developer


async def signed_in_account(browser: AccountBrowser) -> TikTokAccount:
    """The account of a finished /account sign-in (not one still waiting for its first visit)."""
    session = browser.session
    if browser.account is None or session is None or session.kind != "account":
        raise _sign_in_first(ACCOUNT_PAGE)
    return browser.account


SignedIn = Annotated[Developer, Depends(signed_in_developer)]
SignedInAccount = Annotated[TikTokAccount, Depends(signed_in_account)]


# -- ids -----------------------------------------------------------------------------------


def page_id(text: str, what: str) -> int:
    """`livegate.ids.parse_id`, refused as the error page says."""
    try:
        return parse_id(text, what)
    except BadId as exc:
        error = "not_found" if exc.status == 404 else "invalid_request"
        raise LivegateError(exc.status, error, exc.message) from exc


def api_key_pk(key_id: Annotated[str, Path(description="The API key's number.")]) -> int:
    return page_id(key_id, "API key")


def grant_pk(grant_id: Annotated[str, Path(description="The connected app's number.")]) -> int:
    return page_id(grant_id, "app")


def revoked_grant(
    revoked: Annotated[str | None, Query(description="The app just disconnected.")] = None,
) -> int | None:
    return None if revoked is None else page_id(revoked, "app")


ApiKeyPk = Annotated[int, Depends(api_key_pk)]
GrantPk = Annotated[int, Depends(grant_pk)]
RevokedGrant = Annotated[int | None, Depends(revoked_grant)]
