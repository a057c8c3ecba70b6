"""Simulator: the fake phone. Opening a QR code's URL is scanning it; the page then lets the
user pick (or type) an account and confirm or refuse the sign-in, as the TikTok app would."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from livegate.simulator import qr as qr_logins
from livegate.simulator.state import state_of

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
UNIQUE_ID_RE = re.compile(r"^[A-Za-z0-9_.]{2,24}$")

router = APIRouter(prefix="/_sim/phone")


def _render(
    request: Request, token: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    state = state_of(request)
    with state.lock:
        qr = state.qr_logins.get(token)
        if qr is not None:
            qr_logins.refresh_expiry(qr, time.time())
        accounts = sorted(
            state.accounts.values(), key=lambda a: int(a.uid) if a.uid.isdigit() else 0
        )
        rows = [a.public() for a in accounts]
    page = TEMPLATES.get_template("phone.html").render(
        token=token,
        status=qr.status if qr else None,
        accounts=rows,
        selected_uid=(qr.uid if qr else None) or (rows[0]["uid"] if rows else None),
        error=error,
    )
    return HTMLResponse(
        page,
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _back_to_phone(request: Request, token: str) -> RedirectResponse:
    url = request.url_for("sim_phone").include_query_params(token=token)
    return RedirectResponse(str(url), status_code=303)


@router.get("", name="sim_phone")
def phone(request: Request, token: str = "") -> HTMLResponse:
    # Opening the QR's URL on the phone is what "scanning" is.
    state = state_of(request)
    with state.lock:
        qr = state.qr_logins.get(token)
        if qr is not None:
            qr_logins.refresh_expiry(qr, time.time())
            if qr.status == "new":
                qr.status = "scanned"
    return _render(request, token, status_code=200 if qr else 404)


@router.post("/confirm")
def phone_confirm(
    request: Request,
    token: str = Form(""),
    uid: str = Form(""),
    unique_id: str = Form(""),
) -> Response:
    unique_id = unique_id.strip().lstrip("@")
    if unique_id:
        if not UNIQUE_ID_RE.match(unique_id):
            error = "A username has 2 to 24 letters, digits, '_' or '.'."
            return _render(request, token, error=error, status_code=400)
        uid = state_of(request).create_account(unique_id).uid
    if not uid:
        error = "Choose an account or type a username."
        return _render(request, token, error=error, status_code=400)
    return _act(request, token, "confirm", uid)


@router.post("/refuse")
def phone_refuse(request: Request, token: str = Form("")) -> Response:
    return _act(request, token, "refuse", None)


def _act(request: Request, token: str, action: str, uid: str | None) -> Response:
    try:
        qr_logins.transition(state_of(request), token, action, uid)
    except qr_logins.Conflict as exc:
        return _render(request, token, error=exc.detail, status_code=exc.status_code)
    return _back_to_phone(request, token)
