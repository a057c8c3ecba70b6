"""/account: end users see and disconnect the apps connected to their TikTok account. HTTP only.

They sign in with the same QR flow as the consent page (`login/`); the pending sign-in becomes
their /account session on the first visit after it (`account.finish_sign_in`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from livegate.dashboard import account as account_service
from livegate.dashboard import sessions
from livegate.dashboard.dependencies import (
    AccountBrowser,
    Db,
    GrantPk,
    RevokedGrant,
    SignedInAccount,
    State,
    account_csrf,
)
from livegate.dashboard.strings import STRINGS
from livegate.errors import LivegateError
from livegate.login import routes as login_routes
from livegate.ratelimit import client_address

router = APIRouter(
    tags=["account"],
    default_response_class=HTMLResponse,
    dependencies=[Depends(account_csrf)],
)

ACCOUNT = account_service.ACCOUNT_PATH


@router.get(ACCOUNT, summary="The apps connected to the signed-in TikTok account, or sign-in")
async def account_home(
    revoked: RevokedGrant,
    browser: AccountBrowser,
    db: Db,
    error: Annotated[str | None, Query(description="The QR sign-in did not finish.")] = None,
) -> Response:
    session, account = browser.session, browser.account
    if session is None or account is None:
        failed = STRINGS["signin_failed"] if error is not None else None
        return browser.render("account/signin.html", {"error": failed})
    ttl = browser.settings.account_session_ttl
    page = await db(account_service.apps_page, session.id, account.id, revoked, ttl)
    if page.renewed is not None:
        # The page's CSRF token is bound to the session as it is now.
        token, browser.session = page.renewed
        browser.set_cookie(sessions.ACCOUNT_COOKIE, token, ACCOUNT, ttl)
    flash = STRINGS["revoked_app"].format(app=page.revoked) if page.revoked else None
    return browser.render("account/apps.html", {"apps": page.apps, "flash": flash})


@router.post(f"{ACCOUNT}/login", status_code=303, summary="Start the QR sign-in to /account")
async def account_login(
    request: Request, browser: AccountBrowser, db: Db, state: State
) -> Response:
    limiter = state.limiter
    retry = await limiter.hit(limiter.account_sign_in(client_address(request)))
    if retry is not None:
        headers = {"Retry-After": str(retry)}
        raise LivegateError(429, "rate_limited", STRINGS["too_many_attempts"], headers=headers)
    login, pending = await db(account_service.start_sign_in, state.logins)
    await state.logins.start(login.id, login_routes.binding_value(login), login.csrf_token)
    browser.set_cookie(sessions.ACCOUNT_COOKIE, pending, ACCOUNT, state.settings.login_ttl)
    response = browser.redirect(f"/tiktok/oauth/login/{login.id}")
    login_routes.set_login_cookie(request, response, login)
    return response


@router.post(f"{ACCOUNT}/apps/{{grant_id}}/revoke", status_code=303, summary="Disconnect an app")
async def account_revoke(
    account: SignedInAccount, grant: GrantPk, browser: AccountBrowser, db: Db
) -> Response:
    await db(account_service.revoke_app, account.id, grant)
    return browser.redirect(f"{ACCOUNT}?revoked={grant}")


@router.post(f"{ACCOUNT}/logout", status_code=303, summary="Sign out of /account")
async def account_logout(browser: AccountBrowser, db: Db) -> Response:
    await db(sessions.end, browser.request.cookies.get(sessions.ACCOUNT_COOKIE))
    browser.clear_cookie(sessions.ACCOUNT_COOKIE, ACCOUNT)
    return browser.redirect(ACCOUNT)
