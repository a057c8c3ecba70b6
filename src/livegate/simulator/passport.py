"""Simulator: TikTok's web passport (QR login) and the account profile endpoints.

Shapes follow what TikTok's web passport answers (tiktok-protocol.md §1). A QR login moves
new → scanned → confirmed (or refused / verify / expired) through the control API or the
phone page (qr.py); the first `check_qrconnect` after confirmation hands out a fresh session as
Set-Cookie, and later polls of that token answer `expired` because TikTok consumes a QR
token once it has produced a session.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import secrets
import time
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from livegate.simulator import qr as qr_logins
from livegate.simulator.rooms import world_of
from livegate.simulator.state import Account, QRLogin, SimState, state_of

ERROR_TOO_FAST = 7
ERROR_VERIFY = 2135
ERROR_INVALID_TOKEN = 1
ERROR_SESSION_EXPIRED = 1
USER_NOT_FOUND = 10202
VERIFY_HEADER = "x-tt-verify-idv-decision-conf"

router = APIRouter()


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _passport_error(code: int, description: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        {
            "message": "error",
            "data": {"captcha": "", "desc_url": "", "description": description, "error_code": code},
        },
        status_code=status_code,
    )


def _qr_png(url: str) -> str:
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=4, border=2)
    return base64.b64encode(buf.getvalue()).decode()


def _avatar_url(base: str, acc: Account) -> str:
    return acc.avatar_url or f"{base}/_sim/avatar/{acc.uid}.svg"


def _open_room_id(state: SimState, uid: str) -> str:
    """The id of the account's live room, or "" when it has none open."""
    with state.lock:
        room = world_of(state).live_room_of(uid)
    return room.room_id if room is not None and room.ended_ms is None else ""


def _with_cookies(response: Response, set_cookies: list[str]) -> Response:
    for header in set_cookies:
        response.headers.append("set-cookie", header)
    return response


# -- the login pages and the QR endpoints -----------------------------------------------------


@router.get("/login/qrcode")
@router.get("/login")
def login_page(request: Request) -> Response:
    page = HTMLResponse(
        "<!doctype html><html lang=en><title>Log in | TikTok</title>"
        "<h1>Log in to TikTok</h1></html>"
    )
    secure = request.url.scheme == "https"
    return _with_cookies(page, qr_logins.warm_up_cookies(dict(request.cookies), secure))


@router.api_route("/passport/web/get_qrcode/", methods=["GET", "POST"])
def get_qrcode(request: Request) -> JSONResponse:
    token = secrets.token_hex(16)
    index_url = f"{_base_url(request)}/_sim/phone?token={token}"
    qr = qr_logins.new_qr(state_of(request), token)
    resp = JSONResponse(
        {
            "message": "success",
            "data": {
                "token": token,
                "qrcode": _qr_png(index_url),
                "qrcode_index_url": index_url,
                "expire_time": qr.expire_time,
                "error_code": 0,
            },
        }
    )
    resp.headers["x-ms-token"] = secrets.token_urlsafe(111)
    return resp


def _poll(state: SimState, token: str) -> tuple[QRLogin, str, Account | None] | JSONResponse:
    """One poll of a QR login: its status and, once confirmed, the account; or an error."""
    now = time.time()
    with state.lock:
        qr = state.qr_logins.get(token)
        if qr is None:
            return _passport_error(ERROR_INVALID_TOKEN, "invalid token")
        if qr.last_poll and now - qr.last_poll < state.min_poll_interval:
            return _passport_error(ERROR_TOO_FAST, "Maximum number of attempts reached.")
        qr.last_poll = now
        qr_logins.refresh_expiry(qr, now)
        status = qr.status
        if status == "confirmed" and qr.sessionid is not None:
            status = "expired"  # already turned into a session: the token is spent
        acc = state.accounts.get(qr.uid or "") if status == "confirmed" else None
        if status == "confirmed" and acc is None:
            return _passport_error(ERROR_INVALID_TOKEN, "account not found")
    return qr, status, acc


def _verify_answer(state: SimState, token: str) -> JSONResponse:
    resp = _passport_error(ERROR_VERIFY, "Verify your identity to continue")
    resp.headers[VERIFY_HEADER] = json.dumps(
        {
            "verify_scene": "passport_login",
            "passport_ticket": qr_logins.verify_ticket(state, token),
            "verify_methods": ["email", "mobile"],
        }
    )
    return resp


@router.get("/passport/web/check_qrconnect/")
def check_qrconnect(request: Request) -> Response:
    state = state_of(request)
    token = request.query_params.get("token", "")
    csrf_cookie = request.cookies.get("passport_csrf_token")
    csrf_header = request.headers.get("x-tt-passport-csrf-token")
    if csrf_cookie and csrf_header and csrf_cookie != csrf_header:
        return _passport_error(ERROR_INVALID_TOKEN, "csrf token mismatch")
    polled = _poll(state, token)
    if isinstance(polled, JSONResponse):
        return polled
    qr, status, acc = polled
    if status == "verify":
        return _verify_answer(state, token)
    if status != "confirmed" or acc is None:
        return JSONResponse({"message": "success", "data": {"status": status, "error_code": 0}})
    cookies, sid = qr_logins.session_cookies(state, acc, secure=request.url.scheme == "https")
    with state.lock:
        qr.sessionid = sid
    redirect = f"{_base_url(request)}/foryou?lang=en"
    data = {"status": "confirmed", "error_code": 0, "redirect_url": redirect}
    return _with_cookies(JSONResponse({"message": "success", "data": data}), cookies)


@router.get("/foryou")
def foryou(request: Request) -> Response:
    # The post-login landing page; TikTok sets tt_chain_token on www page loads.
    page = HTMLResponse("<!doctype html><html lang=en><title>TikTok</title><h1>For You</h1>")
    if request.cookies.get("tt_chain_token"):
        return page
    chain = qr_logins.set_cookie("tt_chain_token", secrets.token_urlsafe(18), max_age=15552000)
    return _with_cookies(page, [chain])


# -- the account behind a session, and public profiles ----------------------------------------


@router.get("/passport/web/account/info/")
def account_info(request: Request) -> JSONResponse:
    acc = state_of(request).session_account(request.cookies.get("sessionid"))
    if acc is None:
        return _passport_error(ERROR_SESSION_EXPIRED, "session expired, please sign in again")
    return JSONResponse(
        {
            "message": "success",
            "data": {
                "app_id": 1459,
                "avatar_url": _avatar_url(_base_url(request), acc),
                "country_code": 1,
                "description": "",
                "email": "",
                "has_password": 0,
                "is_blocked": 0,
                "is_blocking": 0,
                "mobile": "",
                "name": acc.nickname,
                "screen_name": acc.nickname,
                "sec_user_id": acc.sec_uid,
                "user_id": int(acc.uid) if acc.uid.isdigit() else acc.uid,
                "user_id_str": acc.uid,
                "user_verified": False,
                "username": acc.unique_id,
            },
        }
    )


def _detail_user(state: SimState, acc: Account, avatar: str) -> dict[str, Any]:
    return {
        "id": acc.uid,
        "shortId": "",
        "uniqueId": acc.unique_id,
        "nickname": acc.nickname,
        "avatarLarger": avatar,
        "avatarMedium": avatar,
        "avatarThumb": avatar,
        "signature": "",
        "createTime": 0,
        "verified": False,
        "secUid": acc.sec_uid,
        "ftc": False,
        "relation": 0,
        "openFavorite": False,
        "commentSetting": 0,
        "duetSetting": 0,
        "stitchSetting": 0,
        "privateAccount": acc.is_private,
        "secret": acc.is_private,
        "isADVirtual": False,
        "roomId": _open_room_id(state, acc.uid),
        "uniqueIdModifyTime": 0,
        "ttSeller": False,
        "downloadSetting": 0,
        "followingVisibility": 1,
        "language": "en",
    }


_EMPTY_STATS = {
    "followerCount": 0,
    "followingCount": 0,
    "heart": 0,
    "heartCount": 0,
    "videoCount": 0,
    "diggCount": 0,
    "friendCount": 0,
}


@router.get("/api/user/detail/")
def user_detail(request: Request) -> JSONResponse:
    state = state_of(request)
    envelope: dict[str, Any] = {
        "extra": {
            "fatal_item_ids": [],
            "logid": secrets.token_hex(16).upper(),
            "now": int(time.time() * 1000),
        },
        "log_pb": {"impr_id": secrets.token_hex(16).upper()},
        "status_msg": "",
    }
    unique_id = request.query_params.get("uniqueId", "")
    acc = state.account_by_unique_id(unique_id) if unique_id else None
    if acc is None:
        status = {"statusCode": USER_NOT_FOUND, "status_code": USER_NOT_FOUND}
        return JSONResponse({**envelope, **status, "userInfo": {}})
    user = _detail_user(state, acc, _avatar_url(_base_url(request), acc))
    # Like TikTok, public profile data needs no session; only the owner sees region.
    viewer = state.session_account(request.cookies.get("sessionid"))
    if viewer is not None and viewer.uid == acc.uid:
        user["region"] = acc.region
    return JSONResponse(
        {
            **envelope,
            "shareMeta": {"desc": "", "title": acc.nickname},
            "statusCode": 0,
            "status_code": 0,
            "userInfo": {"user": user, "stats": dict(_EMPTY_STATS)},
        }
    )


@router.get("/_sim/avatar/{uid}.svg")
def avatar(request: Request, uid: str) -> Response:
    """The picture behind a simulated account's avatar_url (TikTok's CDN in real life)."""
    state = state_of(request)
    with state.lock:
        acc = state.accounts.get(uid)
    letter = (acc.unique_id[:1] if acc else "?").upper()
    hue = int(hashlib.sha256(uid.encode()).hexdigest()[:4], 16) % 360
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100" '
        'viewBox="0 0 100 100">'
        f'<rect width="100" height="100" fill="hsl({hue},60%,45%)"/>'
        '<text x="50" y="66" font-size="48" text-anchor="middle" fill="#fff" '
        f'font-family="sans-serif">{html.escape(letter, quote=False)}</text></svg>'
    )
    return Response(svg, media_type="image/svg+xml")
