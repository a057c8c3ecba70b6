"""The pages a user sees: consent, QR sign-in, errors. HTTP in, HTTP out."""

from __future__ import annotations

import io

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from livegate.errors import NO_STORE
from livegate.login import sealed, strings
from livegate.login.service import (
    BadCsrf,
    LoginNotFound,
    LoginService,
    LoginView,
    NewLogin,
    binding_value,
    qr_version,
)
from livegate.oauth import scopes
from livegate.oauth.service import OAuthService
from livegate.web import templates

router = APIRouter()

COOKIE = "lg_login"
COOKIE_PATH = "/tiktok/oauth/login"


def logins(request: Request) -> LoginService:
    svc: LoginService = request.app.state.logins
    return svc


def binding(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def set_login_cookie(request: Request, response: Response, login: NewLogin) -> None:
    response.set_cookie(
        COOKIE,
        binding_value(login),
        max_age=logins(request).settings.login_ttl,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def error_page(request: Request, error: str, description: str, status: int = 400) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"error": error, "description": description, "t": strings.STRINGS},
        status_code=status,
        headers=NO_STORE,
    )


def expired_page(request: Request) -> Response:
    return error_page(request, "login_expired", strings.STRINGS["login_expired"], status=404)


@router.get("/tiktok/oauth/authorize", response_model=None)
async def authorize(request: Request) -> Response:
    oauth: OAuthService = request.app.state.oauth
    check = await run_in_threadpool(
        oauth.check_authorization, str(request.url), list(request.query_params.multi_items())
    )
    if check.error is not None:
        if check.redirect:
            return RedirectResponse(check.redirect, status_code=302, headers=NO_STORE)
        body = check.error.body if isinstance(check.error.body, dict) else {}
        return error_page(
            request, body.get("error", "invalid_request"), body.get("error_description", "")
        )
    assert check.client is not None and check.params is not None
    svc = logins(request)
    client_pk = check.client.id
    params = check.params

    def create() -> NewLogin:
        with svc.db.session() as session:
            return svc.create(session, purpose="authorize", params=params, client_pk=client_pk)

    login = await run_in_threadpool(create)
    response = templates.TemplateResponse(
        request,
        "consent.html",
        {
            "client": check.client,
            "scopes": scopes.describe(check.scopes or []),
            "login": login,
            "t": strings.STRINGS,
        },
        headers=NO_STORE,
    )
    set_login_cookie(request, response, login)
    return response


async def _form_csrf(request: Request) -> str | None:
    form = await request.form()
    value = form.get("csrf_token")
    return value if isinstance(value, str) else None


@router.post("/tiktok/oauth/login/{login_id}/start", response_model=None)
async def start(request: Request, login_id: str) -> Response:
    try:
        await logins(request).start(login_id, binding(request), await _form_csrf(request))
    except LoginNotFound:
        return expired_page(request)
    except BadCsrf:
        return error_page(request, "invalid_request", strings.STRINGS["bad_csrf"], status=403)
    return RedirectResponse(f"/tiktok/oauth/login/{login_id}", status_code=303)


@router.post("/tiktok/oauth/login/{login_id}/cancel", response_model=None)
async def cancel(request: Request, login_id: str) -> Response:
    try:
        url = await logins(request).cancel(login_id, binding(request), await _form_csrf(request))
    except LoginNotFound:
        return expired_page(request)
    except BadCsrf:
        return error_page(request, "invalid_request", strings.STRINGS["bad_csrf"], status=403)
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


def _qr_page(request: Request, view: LoginView, csrf: str) -> Response:
    return templates.TemplateResponse(
        request,
        "qr.html",
        {
            "view": view,
            "csrf_token": csrf,
            "t": strings.STRINGS,
            "status_text": strings.status_text(view.status),
            "qr_version": qr_version(view.qr_url),
        },
        headers=NO_STORE,
    )


@router.get("/tiktok/oauth/login/{login_id}", response_model=None)
async def qr_page(request: Request, login_id: str) -> Response:
    cookie = binding(request)
    try:
        view = await logins(request).step(login_id, cookie)
    except LoginNotFound:
        return expired_page(request)
    if view.status in ("done", "refused") and view.result_url:
        return RedirectResponse(view.result_url, status_code=303, headers=NO_STORE)
    # step() found the binding good, so the cookie is there.
    return _qr_page(request, view, sealed.csrf_token(cookie or ""))


@router.get("/tiktok/oauth/login/{login_id}/status", response_model=None)
async def status(request: Request, login_id: str) -> Response:
    try:
        view = await logins(request).step(login_id, binding(request))
    except LoginNotFound:
        return JSONResponse(
            {"status": "expired_login", "message": strings.STRINGS["login_expired"]},
            status_code=404,
            headers=NO_STORE,
        )
    body = view.as_json()
    body["status_text"] = strings.status_text(view.status)
    return JSONResponse(body, headers=NO_STORE)


@router.get("/tiktok/oauth/login/{login_id}/qr.svg", response_model=None)
async def qr_svg(request: Request, login_id: str) -> Response:
    try:
        view = await logins(request).view(login_id, binding(request))
    except LoginNotFound:
        return Response(status_code=404)
    if not view.qr_url:
        return Response(status_code=404)
    buf = io.BytesIO()
    segno.make(view.qr_url, error="m").save(
        buf, kind="svg", scale=6, border=2, dark="#000", light="#fff"
    )
    return Response(buf.getvalue(), media_type="image/svg+xml", headers=NO_STORE)
