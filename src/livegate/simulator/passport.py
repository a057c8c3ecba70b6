"""Simulator: TikTok's web passport (QR login), account profile endpoints and the fake phone.

Shapes follow what TikTok's web passport answers (tiktok-protocol.md §1). A QR login moves
new → scanned → confirmed (or refused / verify / expired) through the control API or the
phone page; the first `check_qrconnect` after confirmation hands out a fresh session as
Set-Cookie, and later polls of that token answer `expired` because TikTok consumes a QR
token once it has produced a session.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from livegate.simulator.state import Account, QRLogin, SimState

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

ERROR_TOO_FAST = 7
ERROR_VERIFY = 2135
ERROR_INVALID_TOKEN = 1
ERROR_SESSION_EXPIRED = 1
USER_NOT_FOUND = 10202
VERIFY_HEADER = "x-tt-verify-idv-decision-conf"
# Forgotten QR logins are dropped this long after they expire, so the dict stays small.
QR_RETENTION = 600
UNIQUE_ID_RE = re.compile(r"^[A-Za-z0-9_.]{2,24}$")
PENDING = ("new", "scanned", "verify")


class QRActionIn(BaseModel):
    uid: str | None = None


# ---- helpers --------------------------------------------------------------------------


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _cookie(name: str, value: str, *, max_age: int | None = None, secure: bool = False) -> str:
    parts = [f"{name}={value}", "Path=/", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    parts.append("HttpOnly")
    return "; ".join(parts)


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


def _refresh_expiry(qr: QRLogin, now: float) -> None:
    """A QR that nobody finished before expire_time is over; a confirmed one is not."""
    if qr.status in PENDING and now >= qr.expire_time:
        qr.status = "expired"


def _avatar_url(base: str, acc: Account) -> str:
    return acc.avatar_url or f"{base}/_sim/avatar/{acc.uid}.svg"


def _room_id(state: SimState, uid: str) -> str:
    """The account's open live room, read duck-typed from the webcast part's world.

    The webcast part owns rooms (`state.extra["webcast"]`, with `live_room_of(uid)`); reading
    it by shape keeps the passport independent of that module.
    """
    world = state.extra.get("webcast")
    live_room_of = getattr(world, "live_room_of", None)
    if not callable(live_room_of):
        return ""
    try:
        with state.lock:
            room = live_room_of(uid)
    except Exception:
        return ""
    if room is None or getattr(room, "ended_ms", None) is not None:
        return ""
    return str(getattr(room, "room_id", "") or "")


def _qr_public(qr: QRLogin) -> dict[str, Any]:
    return {
        "token": qr.token,
        "status": qr.status,
        "created_at": qr.created_at,
        "expire_time": qr.expire_time,
        "uid": qr.uid,
    }


class _Conflict(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        self.detail = detail


def _transition(state: SimState, token: str, action: str, uid: str | None) -> QRLogin:
    """Apply a phone-side action to a QR login; raises _Conflict (404/409/422) when it can't."""
    with state.lock:
        qr = state.qr_logins.get(token)
        if qr is None:
            raise _Conflict(404, "unknown QR token")
        _refresh_expiry(qr, time.time())
        if qr.status == "expired":
            raise _Conflict(409, "QR code expired")
        if uid is not None and uid not in state.accounts:
            raise _Conflict(404, "unknown account")
        allowed = {
            "scan": ("new", "scanned"),
            "confirm": PENDING,
            "refuse": PENDING,
            "verify": PENDING,
        }[action]
        if qr.status not in allowed:
            raise _Conflict(409, f"QR login is {qr.status}")
        if action == "scan":
            qr.status = "scanned"
            qr.uid = uid or qr.uid
        elif action == "confirm":
            chosen = uid or qr.uid
            if not chosen:
                raise _Conflict(422, "uid required")
            qr.uid = chosen
            qr.status = "confirmed"
        elif action == "refuse":
            qr.status = "refused"
        else:
            qr.uid = uid or qr.uid
            qr.status = "verify"
        return qr


def _verify_ticket(state: SimState, token: str) -> str:
    with state.lock:
        tickets: dict[str, str] = state.extra.setdefault("passport_verify_tickets", {})
        return tickets.setdefault(token, secrets.token_hex(24))


def _session_cookies(state: SimState, acc: Account, secure: bool) -> tuple[list[str], str]:
    """Set-Cookie headers for a fresh session of `acc`, as TikTok sends on confirmation."""
    sess = state.new_session(acc.uid)
    sid = sess.sessionid
    max_age = sess.max_age
    issued = int(sess.created_at)
    expires = datetime.fromtimestamp(issued + max_age, tz=UTC)
    # TikTok URL-encodes sid_guard (its HTTP date has spaces and commas).
    guard = quote(f"{sid}|{issued}|{max_age}|{format_datetime(expires, usegmt=True)}", safe="")
    uid_tt = hashlib.sha256(f"uid_tt:{acc.uid}".encode()).hexdigest()
    ucp = secrets.token_urlsafe(96)
    values = {
        "sessionid": sid,
        "sessionid_ss": sid,
        "sid_tt": sid,
        "sid_guard": guard,
        "uid_tt": uid_tt,
        "uid_tt_ss": uid_tt,
        "sid_ucp_v1": ucp,
        "ssid_ucp_v1": ucp,
        "cmpl_token": secrets.token_urlsafe(64),
        "multi_sids": quote(f"{acc.uid}:{sid}", safe=""),
        "store-idc": acc.idc,
        "store-country-code": acc.region.lower(),
        "store-country-code-src": "uid",
        "tt-target-idc": acc.idc,
        "tt-target-idc-sign": secrets.token_urlsafe(96),
        "odin_tt": secrets.token_hex(64),
        "passport_auth_status": secrets.token_hex(16) + "%2C",
        "passport_auth_status_ss": secrets.token_hex(16) + "%2C",
        "last_login_method": "QRcode",
    }
    return [_cookie(k, v, max_age=max_age, secure=secure) for k, v in values.items()], sid


def _warm_up_cookies(request: Request) -> list[str]:
    secure = request.url.scheme == "https"
    have = request.cookies
    ts = int(time.time())
    fresh = {
        "ttwid": quote(f"1|{secrets.token_urlsafe(32)}|{ts}|{secrets.token_hex(32)}", safe=""),
        "tt_csrf_token": secrets.token_urlsafe(24),
        "passport_csrf_token": secrets.token_hex(16),
        "msToken": secrets.token_urlsafe(111),
    }
    year = 365 * 24 * 3600
    return [
        _cookie(name, value, max_age=year, secure=secure)
        for name, value in fresh.items()
        if not have.get(name)
    ]


# ---- routes ---------------------------------------------------------------------------


def router(state: SimState) -> APIRouter:
    r = APIRouter()

    # -- TikTok's www / passport paths --

    @r.get("/login/qrcode")
    @r.get("/login")
    def login_page(request: Request) -> HTMLResponse:
        resp = HTMLResponse(
            "<!doctype html><html lang=en><title>Log in | TikTok</title>"
            "<h1>Log in to TikTok</h1></html>"
        )
        for header in _warm_up_cookies(request):
            resp.headers.append("set-cookie", header)
        return resp

    @r.api_route("/passport/web/get_qrcode/", methods=["GET", "POST"])
    def get_qrcode(request: Request) -> JSONResponse:
        now = time.time()
        token = secrets.token_hex(16)
        index_url = f"{_base_url(request)}/_sim/phone?token={token}"
        qr = QRLogin(token=token, created_at=now, expire_time=int(now) + state.qr_lifetime)
        with state.lock:
            for old in [
                t for t, q in state.qr_logins.items() if q.expire_time + QR_RETENTION < now
            ]:
                del state.qr_logins[old]
            state.qr_logins[token] = qr
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

    @r.get("/passport/web/check_qrconnect/")
    def check_qrconnect(request: Request) -> Response:
        token = request.query_params.get("token", "")
        csrf_cookie = request.cookies.get("passport_csrf_token")
        csrf_header = request.headers.get("x-tt-passport-csrf-token")
        if csrf_cookie and csrf_header and csrf_cookie != csrf_header:
            return _passport_error(ERROR_INVALID_TOKEN, "csrf token mismatch")
        now = time.time()
        with state.lock:
            qr = state.qr_logins.get(token)
            if qr is None:
                return _passport_error(ERROR_INVALID_TOKEN, "invalid token")
            if qr.last_poll and now - qr.last_poll < state.min_poll_interval:
                return _passport_error(ERROR_TOO_FAST, "Maximum number of attempts reached.")
            qr.last_poll = now
            _refresh_expiry(qr, now)
            status = qr.status
            if status == "confirmed" and qr.sessionid is not None:
                # Already turned into a session: the token is spent.
                status = "expired"
            acc = state.accounts.get(qr.uid or "") if status == "confirmed" else None
            if status == "confirmed" and acc is None:
                return _passport_error(ERROR_INVALID_TOKEN, "account not found")
        if status == "verify":
            resp = _passport_error(ERROR_VERIFY, "Verify your identity to continue")
            resp.headers[VERIFY_HEADER] = json.dumps(
                {
                    "verify_scene": "passport_login",
                    "passport_ticket": _verify_ticket(state, token),
                    "verify_methods": ["email", "mobile"],
                }
            )
            return resp
        if status != "confirmed" or acc is None:
            return JSONResponse({"message": "success", "data": {"status": status, "error_code": 0}})
        base = _base_url(request)
        cookies, sid = _session_cookies(state, acc, secure=request.url.scheme == "https")
        with state.lock:
            qr.sessionid = sid
        resp = JSONResponse(
            {
                "message": "success",
                "data": {
                    "status": "confirmed",
                    "error_code": 0,
                    "redirect_url": f"{base}/foryou?lang=en",
                },
            }
        )
        for header in cookies:
            resp.headers.append("set-cookie", header)
        return resp

    @r.get("/foryou")
    def foryou(request: Request) -> HTMLResponse:
        # The post-login landing page; TikTok sets tt_chain_token on www page loads.
        resp = HTMLResponse("<!doctype html><html lang=en><title>TikTok</title><h1>For You</h1>")
        if not request.cookies.get("tt_chain_token"):
            resp.headers.append(
                "set-cookie", _cookie("tt_chain_token", secrets.token_urlsafe(18), max_age=15552000)
            )
        return resp

    @r.get("/passport/web/account/info/")
    def account_info(request: Request) -> JSONResponse:
        acc = state.session_account(request.cookies.get("sessionid"))
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

    @r.get("/api/user/detail/")
    def user_detail(request: Request) -> JSONResponse:
        now_ms = int(time.time() * 1000)
        envelope: dict[str, Any] = {
            "extra": {"fatal_item_ids": [], "logid": secrets.token_hex(16).upper(), "now": now_ms},
            "log_pb": {"impr_id": secrets.token_hex(16).upper()},
        }
        unique_id = request.query_params.get("uniqueId", "")
        acc = state.account_by_unique_id(unique_id) if unique_id else None
        if acc is None:
            return JSONResponse(
                {
                    **envelope,
                    "statusCode": USER_NOT_FOUND,
                    "status_code": USER_NOT_FOUND,
                    "status_msg": "",
                    "userInfo": {},
                }
            )
        # Like TikTok, public profile data needs no session; only the owner sees region.
        viewer = state.session_account(request.cookies.get("sessionid"))
        avatar = _avatar_url(_base_url(request), acc)
        user: dict[str, Any] = {
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
            "roomId": _room_id(state, acc.uid),
            "uniqueIdModifyTime": 0,
            "ttSeller": False,
            "downloadSetting": 0,
            "followingVisibility": 1,
            "language": "en",
        }
        if viewer is not None and viewer.uid == acc.uid:
            user["region"] = acc.region
        stats = {
            "followerCount": 0,
            "followingCount": 0,
            "heart": 0,
            "heartCount": 0,
            "videoCount": 0,
            "diggCount": 0,
            "friendCount": 0,
        }
        return JSONResponse(
            {
                **envelope,
                "shareMeta": {"desc": "", "title": acc.nickname},
                "statusCode": 0,
                "status_code": 0,
                "status_msg": "",
                "userInfo": {"user": user, "stats": stats},
            }
        )

    # -- control API --

    @r.get("/_sim/qr")
    def list_qr(include_all: bool = Query(False, alias="all")) -> list[dict[str, Any]]:
        now = time.time()
        with state.lock:
            rows = []
            for qr in state.qr_logins.values():
                _refresh_expiry(qr, now)
                pending = qr.status in PENDING or (
                    qr.status == "confirmed" and qr.sessionid is None
                )
                if include_all or pending:
                    rows.append(_qr_public(qr))
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        return rows

    def _control(token: str, action: str, body: QRActionIn | None) -> JSONResponse:
        try:
            qr = _transition(state, token, action, body.uid if body else None)
        except _Conflict as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return JSONResponse(_qr_public(qr))

    @r.post("/_sim/qr/{token}/scan")
    def qr_scan(token: str, body: QRActionIn | None = None) -> JSONResponse:
        return _control(token, "scan", body)

    @r.post("/_sim/qr/{token}/confirm")
    def qr_confirm(token: str, body: QRActionIn | None = None) -> JSONResponse:
        return _control(token, "confirm", body)

    @r.post("/_sim/qr/{token}/refuse")
    def qr_refuse(token: str, body: QRActionIn | None = None) -> JSONResponse:
        return _control(token, "refuse", body)

    @r.post("/_sim/qr/{token}/verify")
    def qr_verify(token: str, body: QRActionIn | None = None) -> JSONResponse:
        return _control(token, "verify", body)

    @r.get("/_sim/avatar/{uid}.svg")
    def avatar(uid: str) -> Response:
        with state.lock:
            acc = state.accounts.get(uid)
        letter = (acc.unique_id[:1] if acc else "?").upper()
        hue = int(hashlib.sha256(uid.encode()).hexdigest()[:4], 16) % 360
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100" '
            'viewBox="0 0 100 100">'
            f'<rect width="100" height="100" fill="hsl({hue},60%,45%)"/>'
            '<text x="50" y="66" font-size="48" text-anchor="middle" fill="#fff" '
            f'font-family="sans-serif">{_xml_escape(letter)}</text></svg>'
        )
        return Response(svg, media_type="image/svg+xml")

    # -- the fake phone --

    def _render_phone(
        request: Request, token: str, error: str | None = None, status_code: int = 200
    ) -> HTMLResponse:
        with state.lock:
            qr = state.qr_logins.get(token)
            if qr is not None:
                _refresh_expiry(qr, time.time())
            status = qr.status if qr else None
            chosen = qr.uid if qr else None
            accounts = sorted(
                state.accounts.values(), key=lambda a: int(a.uid) if a.uid.isdigit() else 0
            )
            account_rows = [a.public() for a in accounts]
        html = TEMPLATES.get_template("phone.html").render(
            token=token,
            status=status,
            accounts=account_rows,
            selected_uid=chosen or (account_rows[0]["uid"] if account_rows else None),
            error=error,
        )
        return HTMLResponse(
            html,
            status_code=status_code,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    @r.get("/_sim/phone", name="sim_phone")
    def phone(request: Request, token: str = "") -> HTMLResponse:
        # Opening the QR's URL on the phone is what "scanning" is.
        with state.lock:
            qr = state.qr_logins.get(token)
            if qr is not None:
                _refresh_expiry(qr, time.time())
                if qr.status == "new":
                    qr.status = "scanned"
        return _render_phone(request, token, status_code=200 if qr else 404)

    def _back_to_phone(request: Request, token: str) -> RedirectResponse:
        url = request.url_for("sim_phone").include_query_params(token=token)
        return RedirectResponse(str(url), status_code=303)

    @r.post("/_sim/phone/confirm")
    def phone_confirm(
        request: Request,
        token: str = Form(""),
        uid: str = Form(""),
        unique_id: str = Form(""),
    ) -> Response:
        unique_id = unique_id.strip().lstrip("@")
        if unique_id:
            if not UNIQUE_ID_RE.match(unique_id):
                return _render_phone(
                    request,
                    token,
                    error="A username has 2 to 24 letters, digits, '_' or '.'.",
                    status_code=400,
                )
            uid = state.create_account(unique_id).uid
        if not uid:
            return _render_phone(
                request, token, error="Choose an account or type a username.", status_code=400
            )
        try:
            _transition(state, token, "confirm", uid)
        except _Conflict as exc:
            return _render_phone(request, token, error=exc.detail, status_code=exc.status_code)
        return _back_to_phone(request, token)

    @r.post("/_sim/phone/refuse")
    def phone_refuse(request: Request, token: str = Form("")) -> Response:
        try:
            _transition(state, token, "refuse", None)
        except _Conflict as exc:
            return _render_phone(request, token, error=exc.detail, status_code=exc.status_code)
        return _back_to_phone(request, token)

    return r


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
