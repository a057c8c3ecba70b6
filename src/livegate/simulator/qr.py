"""The simulator's QR logins as the phone moves them (new → scanned → confirmed, or refused,
verify, expired), and the cookies TikTok hands out along the way. No HTTP."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from livegate.simulator.state import Account, QRLogin, SimState

PENDING = ("new", "scanned", "verify")
# Forgotten QR logins are dropped this long after they expire, so the dict stays small.
QR_RETENTION = 600
# From which states each phone-side action may move a QR login.
_ALLOWED = {"scan": ("new", "scanned"), "confirm": PENDING, "refuse": PENDING, "verify": PENDING}


class Conflict(Exception):
    """A phone-side action the QR login cannot take, with the HTTP status that says why."""

    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        self.detail = detail


def refresh_expiry(qr: QRLogin, now: float) -> None:
    """A QR that nobody finished before expire_time is over; a confirmed one is not."""
    if qr.status in PENDING and now >= qr.expire_time:
        qr.status = "expired"


def new_qr(state: SimState, token: str) -> QRLogin:
    now = time.time()
    qr = QRLogin(token=token, created_at=now, expire_time=int(now) + state.qr_lifetime)
    with state.lock:
        for old in [t for t, q in state.qr_logins.items() if q.expire_time + QR_RETENTION < now]:
            del state.qr_logins[old]
        state.qr_logins[token] = qr
    return qr


def public(qr: QRLogin) -> dict[str, Any]:
    return {
        "token": qr.token,
        "status": qr.status,
        "created_at": qr.created_at,
        "expire_time": qr.expire_time,
        "uid": qr.uid,
    }


def pending(state: SimState, include_all: bool = False) -> list[dict[str, Any]]:
    """The QR logins a phone could still act on (or all of them), newest first."""
    now = time.time()
    with state.lock:
        rows = []
        for qr in state.qr_logins.values():
            refresh_expiry(qr, now)
            waiting = qr.status in PENDING or (qr.status == "confirmed" and qr.sessionid is None)
            if include_all or waiting:
                rows.append(public(qr))
    rows.sort(key=lambda row: row["created_at"], reverse=True)
    return rows


def transition(state: SimState, token: str, action: str, uid: str | None) -> QRLogin:
    """Apply a phone-side action to a QR login; Conflict (404/409/422) when it can't."""
    with state.lock:
        qr = state.qr_logins.get(token)
        if qr is None:
            raise Conflict(404, "unknown QR token")
        refresh_expiry(qr, time.time())
        if qr.status == "expired":
            raise Conflict(409, "QR code expired")
        if uid is not None and uid not in state.accounts:
            raise Conflict(404, "unknown account")
        if qr.status not in _ALLOWED[action]:
            raise Conflict(409, f"QR login is {qr.status}")
        if action == "confirm":
            qr.uid = uid or qr.uid
            if not qr.uid:
                raise Conflict(422, "uid required")
        elif action != "refuse":
            qr.uid = uid or qr.uid
        qr.status = {"scan": "scanned", "confirm": "confirmed", "refuse": "refused"}.get(
            action, "verify"
        )
        return qr


def verify_ticket(state: SimState, token: str) -> str:
    with state.lock:
        tickets: dict[str, str] = state.extra.setdefault("passport_verify_tickets", {})
        return tickets.setdefault(token, secrets.token_hex(24))


def set_cookie(name: str, value: str, *, max_age: int | None = None, secure: bool = False) -> str:
    parts = [f"{name}={value}", "Path=/", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    parts.append("HttpOnly")
    return "; ".join(parts)


def session_cookies(state: SimState, acc: Account, secure: bool) -> tuple[list[str], str]:
    """Set-Cookie headers for a fresh session of `acc`, as TikTok sends on confirmation."""
    sess = state.new_session(acc.uid)
    sid, max_age, issued = sess.sessionid, sess.max_age, int(sess.created_at)
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
    return [set_cookie(k, v, max_age=max_age, secure=secure) for k, v in values.items()], sid


def warm_up_cookies(have: dict[str, str], secure: bool) -> list[str]:
    """Set-Cookie headers for the visitor cookies a login page load seeds, where missing."""
    ts = int(time.time())
    fresh = {
        "ttwid": quote(f"1|{secrets.token_urlsafe(32)}|{ts}|{secrets.token_hex(32)}", safe=""),
        "tt_csrf_token": secrets.token_urlsafe(24),
        "passport_csrf_token": secrets.token_hex(16),
        "msToken": secrets.token_urlsafe(111),
    }
    year = 365 * 24 * 3600
    return [
        set_cookie(name, value, max_age=year, secure=secure)
        for name, value in fresh.items()
        if not have.get(name)
    ]
