"""The pages a user sees: consent, QR sign-in, errors. HTTP in, HTTP out."""

from __future__ import annotations

import io
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, RedirectResponse, Response

from livegate.errors import NO_STORE, LivegateError
from livegate.login import sealed, strings
from livegate.login.service import LoginService, LoginView, NewLogin, binding_value, qr_version
from livegate.oauth import scopes
from livegate.oauth.service import ConsentRequest, OAuthService
from livegate.web import templates

router = APIRouter(tags=["sign-in"])

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


@router.get(
    "/tiktok/oauth/authorize",
    response_model=None,
    summary="Authorization endpoint (RFC 6749 §4.1.1): the consent page, then the QR sign-in",
    responses={
        200: {"content": {"text/html": {}}, "description": "The consent page"},
        302: {"description": "Back to the client's redirect URI with an error (and state, iss)"},
        400: {
            "content": {"text/html": {}},
            "description": "An error page: the client or redirect URI cannot be trusted",
        },
    },
)
async def authorize(request: Request) -> Response:
    oauth: OAuthService = request.app.state.oauth
    svc = logins(request)

    def create(session: Session, checked: ConsentRequest) -> NewLogin:
        return svc.create(
            session, purpose="authorize", params=checked.params, client_pk=checked.client.id
        )

    # The request checked and its sign-in created in one transaction.
    outcome = await run_in_threadpool(
        oauth.authorizations.check_then,
        str(request.url),
        list(request.query_params.multi_items()),
        create,
    )
    if isinstance(outcome, str):
        return RedirectResponse(outcome, status_code=302, headers=NO_STORE)
    checked, login = outcome
    response = templates.TemplateResponse(
        request,
        "consent.html",
        {
            "client": checked.client,
            "scopes": scopes.describe(checked.scopes),
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


PAGE_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"content": {"text/html": {}}, "description": "The form's CSRF token was not accepted"},
    404: {"content": {"text/html": {}}, "description": "No such sign-in for this browser"},
}


def form_post(path: str, summary: str) -> Any:
    """The route decorator of a consent-page button (a form POST with its CSRF token)."""
    responses = {303: {"description": "On to the next page"}, **PAGE_REFUSALS}
    return router.post(path, response_model=None, summary=summary, responses=responses)


@form_post(
    "/tiktok/oauth/login/{login_id}/start",
    "The user continues from the consent page: the first QR code",
)
async def start(request: Request, login_id: str) -> Response:
    await logins(request).start(login_id, binding(request), await _form_csrf(request))
    return RedirectResponse(f"/tiktok/oauth/login/{login_id}", status_code=303)


@form_post(
    "/tiktok/oauth/login/{login_id}/cancel",
    "The user declines: back to the app with access_denied",
)
async def cancel(request: Request, login_id: str) -> Response:
    url = await logins(request).cancel(login_id, binding(request), await _form_csrf(request))
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


@router.get(
    "/tiktok/oauth/login/{login_id}",
    response_model=None,
    summary="The QR sign-in page (or, once it is over, the redirect back to the app)",
    responses={200: {"content": {"text/html": {}}}, 404: PAGE_REFUSALS[404]},
)
async def qr_page(request: Request, login_id: str) -> Response:
    cookie = binding(request)
    view = await logins(request).step(login_id, cookie)
    if view.status in ("done", "refused") and view.result_url:
        return RedirectResponse(view.result_url, status_code=303, headers=NO_STORE)
    # step() found the binding good, so the cookie is there.
    return _qr_page(request, view, sealed.csrf_token(cookie or ""))


@router.get(
    "/tiktok/oauth/login/{login_id}/status",
    response_model=None,
    summary="Where the sign-in stands (the QR page polls it)",
    responses={404: {"description": '{"status": "expired_login", "message": ...}'}},
)
async def status(request: Request, login_id: str) -> Response:
    try:
        view = await logins(request).step(login_id, binding(request))
    except LivegateError as exc:  # login_expired: the page's script reads this shape
        return JSONResponse(
            {"status": "expired_login", "message": exc.message}, status_code=404, headers=NO_STORE
        )
    body = view.as_json()
    body["status_text"] = strings.status_text(view.status)
    return JSONResponse(body, headers=NO_STORE)


@router.get(
    "/tiktok/oauth/login/{login_id}/qr.svg",
    response_model=None,
    summary="The current QR code, as SVG",
    responses={200: {"content": {"image/svg+xml": {}}}, 404: {"description": "No QR code"}},
)
async def qr_svg(request: Request, login_id: str) -> Response:
    try:
        view = await logins(request).view(login_id, binding(request))
    except LivegateError:  # login_expired: an image gets no page
        return Response(status_code=404)
    if not view.qr_url:
        return Response(status_code=404)
    buf = io.BytesIO()
    segno.make(view.qr_url, error="m").save(
        buf, kind="svg", scale=6, border=2, dark="#000", light="#fff"
    )
    return Response(buf.getvalue(), media_type="image/svg+xml", headers=NO_STORE)
