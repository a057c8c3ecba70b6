"""Developers sign up, sign in and sign out of the dashboard. HTTP only.

A refused form is shown again with what to fix (400, 401, 429); it changed nothing, so
sending it again is harmless. A sign-in or sign-up that succeeds redirects.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from livegate.dashboard import service, sessions
from livegate.dashboard.browser import Browser
from livegate.dashboard.dependencies import (
    LOGIN_PAGE,
    Db,
    DeveloperBrowser,
    State,
    Transactions,
    developer_csrf,
    signed_in_developer,
)
from livegate.dashboard.passwords import MIN_LENGTH
from livegate.dashboard.schemas import SignInForm
from livegate.dashboard.strings import STRINGS
from livegate.ratelimit import client_address

router = APIRouter(
    tags=["dashboard"],
    default_response_class=HTMLResponse,
    dependencies=[Depends(developer_csrf)],
)

HOME = "/dashboard/clients"


def _login_page(
    browser: Browser,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    data = {"email": email, "error": error}
    return browser.render("dashboard/login.html", data, status=status, headers=headers)


def _signup_page(
    browser: Browser,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if not browser.settings.signup:
        return browser.render("dashboard/signup.html", {"closed": True}, status=403)
    data = {"closed": False, "email": email, "error": error, "min": MIN_LENGTH}
    return browser.render("dashboard/signup.html", data, status=status, headers=headers)


async def _sign_in(browser: Browser, db: Transactions, developer_id: int) -> Response:
    """A new session (whatever came before ends) and a new CSRF cookie, then the clients."""
    ttl = browser.settings.dashboard_session_ttl
    old = browser.request.cookies.get(sessions.DEVELOPER_COOKIE)
    token = await db(service.start_session, old, developer_id, ttl)
    browser.set_cookie(sessions.DEVELOPER_COOKIE, token, "/", ttl)
    browser.renew_csrf()
    return browser.redirect(HOME)


@router.get(
    "/dashboard",
    summary="The dashboard: on to the clients, or to the sign-in page",
    status_code=303,
    dependencies=[Depends(signed_in_developer)],
)
async def dashboard_home(browser: DeveloperBrowser) -> Response:
    return browser.redirect(HOME)


@router.get("/dashboard/login", summary="The sign-in form")
async def login_form(browser: DeveloperBrowser) -> Response:
    if browser.developer is not None:
        return browser.redirect(HOME)
    return _login_page(browser)


@router.post("/dashboard/login", status_code=303, summary="Sign in with email and password")
async def login_submit(
    request: Request,
    form: Annotated[SignInForm, Form()],
    browser: DeveloperBrowser,
    db: Db,
    state: State,
) -> Response:
    limiter = state.limiter
    rules = limiter.sign_in(client_address(request), form.email)
    retry = await limiter.retry_after(rules)
    if retry is not None:
        error = STRINGS["too_many_attempts"]
        return _login_page(browser, form.email, error, 429, {"Retry-After": str(retry)})
    dev = await db(service.authenticate, form.email, form.password)
    if dev is None:
        await limiter.failed(rules)
        return _login_page(browser, form.email, STRINGS["bad_login"], 401)
    return await _sign_in(browser, db, dev.id)


@router.get("/dashboard/signup", summary="The form that creates a developer account")
async def signup_form(browser: DeveloperBrowser) -> Response:
    return _signup_page(browser)


@router.post("/dashboard/signup", status_code=303, summary="Create a developer account and sign in")
async def signup_submit(
    request: Request,
    form: Annotated[SignInForm, Form()],
    browser: DeveloperBrowser,
    db: Db,
    state: State,
) -> Response:
    if not state.settings.signup:
        return _signup_page(browser)
    retry = await state.limiter.hit(state.limiter.sign_up(client_address(request)))
    if retry is not None:
        error = STRINGS["too_many_attempts"]
        return _signup_page(browser, form.email, error, 429, {"Retry-After": str(retry)})
    try:
        dev = await db(service.create_developer, form.email, form.password)
    except service.DashboardError as exc:
        return _signup_page(browser, form.email, exc.message, exc.status)
    return await _sign_in(browser, db, dev.id)


@router.post("/dashboard/logout", status_code=303, summary="Sign out of the dashboard")
async def logout(browser: DeveloperBrowser, db: Db) -> Response:
    await db(sessions.end, browser.request.cookies.get(sessions.DEVELOPER_COOKIE))
    browser.clear_cookie(sessions.DEVELOPER_COOKIE, "/")
    return browser.redirect(LOGIN_PAGE)
