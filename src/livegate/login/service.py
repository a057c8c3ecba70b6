"""The QR sign-in state machine behind the consent and QR pages.

A pending login advances only when the browser asks (page load or status poll), at most once
per poll interval, whichever request claims the slot; so any number of open tabs cause one
upstream poll per interval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from livegate import audit
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import PendingLogin, utcnow
from livegate.oauth.service import OAuthService
from livegate.tiktok.cookies import has_login_cookie, keep_session_cookies
from livegate.tiktok.errors import SessionExpired, UpstreamError
from livegate.tiktok.passport import PassportClient, QRCode, QRPoll, TikTokProfile

log = logging.getLogger(__name__)
T = TypeVar("T")

# Statuses after which nothing more happens upstream.
FINAL = {"done", "refused", "error"}


@dataclass
class LoginView:
    id: str
    status: str
    purpose: str
    qr_url: str | None
    qr_expires_at: dt.datetime | None
    result_url: str | None
    message: str | None = None
    unique_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "qr_expires_at": int(self.qr_expires_at.timestamp()) if self.qr_expires_at else None,
            "qr_url": self.qr_url,
            "qr_version": qr_version(self.qr_url),
            "redirect": self.result_url,
            "message": self.message,
            "unique_id": self.unique_id,
        }


class LoginNotFound(LookupError):
    pass


class BadCsrf(PermissionError):
    pass


def qr_version(qr_url: str | None) -> str:
    """Changes whenever TikTok issues a new QR code; tells the page to reload the image."""
    return hashlib.sha256(qr_url.encode()).hexdigest()[:12] if qr_url else ""


def _view(row: PendingLogin, message: str | None = None) -> LoginView:
    return LoginView(
        id=row.id,
        status=row.status,
        purpose=row.purpose,
        qr_url=row.qr_url,
        qr_expires_at=row.qr_expires_at,
        result_url=row.result_url,
        message=message or (row.passport_state or {}).get("_message"),
        unique_id=row.account_unique_id,
    )


class LoginService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        oauth: OAuthService,
        passport: PassportClient,
        on_account_login: Callable[[Session, PendingLogin, TikTokProfile, dict[str, str]], str]
        | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.oauth = oauth
        self.passport = passport
        # The connected-apps page signs users in with the same QR flow; it supplies this.
        self.on_account_login = on_account_login

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.db.session() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    # -- lifecycle --------------------------------------------------------------------------

    def create(
        self, session: Session, *, purpose: str, params: dict[str, Any], client_pk: int | None
    ) -> PendingLogin:
        now = utcnow()
        row = PendingLogin(
            id=pysecrets.token_urlsafe(24),
            purpose=purpose,
            client_pk=client_pk,
            request_params=params,
            csrf_token=pysecrets.token_urlsafe(32),
            status="consent",
            expires_at=now + dt.timedelta(seconds=self.settings.login_ttl),
        )
        session.add(row)
        session.flush()
        if client_pk is not None:
            audit.record(session, "authorization.started", client_pk=client_pk)
        return row

    def _load(self, session: Session, login_id: str, binding: str | None) -> PendingLogin:
        row = session.get(PendingLogin, login_id)
        if row is None or row.expires_at <= utcnow():
            raise LoginNotFound(login_id)
        # The browser that started the flow holds the binding cookie; nobody else may drive it.
        if not binding or not pysecrets.compare_digest(binding, row.csrf_token):
            raise LoginNotFound(login_id)
        return row

    async def view(self, login_id: str, binding: str | None) -> LoginView:
        return await self._db(lambda s: _view(self._load(s, login_id, binding)))

    async def get_params(self, login_id: str, binding: str | None) -> PendingLogin:
        return await self._db(lambda s: self._load(s, login_id, binding))

    async def start(self, login_id: str, binding: str | None, csrf: str | None) -> LoginView:
        """The user pressed "Continue with TikTok": fetch the first QR code."""
        row = await self._db(lambda s: self._check_csrf(self._load(s, login_id, binding), csrf))
        if row.qr_token:
            return _view(row)
        try:
            state, qr = await self.passport.start()
        except UpstreamError as exc:
            log.warning("passport start failed: %s", exc.code)
            return _view(row, "TikTok is not answering right now. Please try again.")

        def save(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            _apply_qr(r, qr)
            r.passport_state = state
            r.status = "new"
            r.next_poll_at = utcnow()
            return _view(r)

        return await self._db(save)

    async def cancel(self, login_id: str, binding: str | None, csrf: str | None) -> str:
        def run(session: Session) -> str:
            row = self._check_csrf(self._load(session, login_id, binding), csrf)
            row.status = "refused"
            row.result_url = self.oauth.deny_redirect(row.request_params)
            audit.record(session, "authorization.refused", client_pk=row.client_pk, by="consent")
            return row.result_url

        return await self._db(run)

    @staticmethod
    def _check_csrf(row: PendingLogin, csrf: str | None) -> PendingLogin:
        if not csrf or not pysecrets.compare_digest(csrf, row.csrf_token):
            raise BadCsrf()
        return row

    # -- polling ----------------------------------------------------------------------------

    async def step(self, login_id: str, binding: str | None) -> LoginView:
        """Advance the sign-in by at most one upstream poll, and say where it stands."""
        now = utcnow()

        def claim(session: Session) -> tuple[PendingLogin, bool]:
            row = self._load(session, login_id, binding)
            if row.status in FINAL or row.status == "consent" or not row.qr_token:
                return row, False
            interval = dt.timedelta(seconds=self.settings.qr_poll_interval)
            claimed = session.execute(
                update(PendingLogin)
                .where(
                    PendingLogin.id == row.id,
                    or_(PendingLogin.next_poll_at.is_(None), PendingLogin.next_poll_at <= now),
                )
                .values(next_poll_at=now + interval)
            )
            return row, claimed.rowcount == 1  # type: ignore[attr-defined]

        row, claimed = await self._db(claim)
        if not claimed:
            return _view(row)
        state = dict(row.passport_state or {})
        state.pop("_message", None)
        token = row.qr_token or ""
        try:
            if row.status == "confirmed" and state.get("_jar"):
                # The QR token is spent once confirmed; only the profile read is retried.
                poll = QRPoll(status="confirmed", cookies=dict(state["_jar"]))
            elif row.qr_expires_at and row.qr_expires_at <= now:
                poll = QRPoll(status="expired")
            else:
                poll = await self.passport.poll(state, token)
            if poll.status == "expired":
                qr = await self.passport.new_qr(state)
                return await self._save(login_id, binding, state, status="new", qr=qr)
            if poll.status == "confirmed":
                jar = keep_session_cookies(poll.cookies)
                if not has_login_cookie(jar):
                    return await self._fail(login_id, binding, "TikTok did not return a session.")
                state["_jar"] = jar
                await self._save(login_id, binding, state, status="confirmed")
                profile = await self.passport.fetch_profile(jar)
                return await self._finish(login_id, binding, state, profile, jar)
        except SessionExpired:
            return await self._fail(login_id, binding, "TikTok ended the session right away.")
        except UpstreamError as exc:
            log.warning("passport poll failed: %s", exc.code)
            state["_message"] = "TikTok is not answering right now; still trying."
            return await self._save(login_id, binding, state)
        if poll.status == "refused":
            return await self._refuse(login_id, binding, state)
        if poll.status == "slow_down":
            retry = dt.timedelta(seconds=poll.retry_after or 120)
            return await self._save(login_id, binding, state, next_poll_at=utcnow() + retry)
        status = poll.status if poll.status in ("new", "scanned", "verify") else row.status
        return await self._save(login_id, binding, state, status=status)

    async def _save(
        self,
        login_id: str,
        binding: str | None,
        state: dict[str, Any],
        *,
        status: str | None = None,
        qr: QRCode | None = None,
        next_poll_at: dt.datetime | None = None,
    ) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            if r.status in FINAL:
                return _view(r)
            r.passport_state = state
            if status:
                r.status = status
            if qr:
                _apply_qr(r, qr)
            if next_poll_at:
                r.next_poll_at = next_poll_at
            return _view(r)

        return await self._db(run)

    async def _fail(self, login_id: str, binding: str | None, message: str) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            r.status = "error"
            r.passport_state = {"_message": message}
            audit.record(session, "authorization.failed", client_pk=r.client_pk)
            return _view(r)

        return await self._db(run)

    async def _refuse(self, login_id: str, binding: str | None, state: dict[str, Any]) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            r.passport_state = state
            r.status = "refused"
            if r.purpose == "authorize":
                r.result_url = self.oauth.deny_redirect(r.request_params)
            audit.record(session, "authorization.refused", client_pk=r.client_pk, by="tiktok")
            return _view(r)

        return await self._db(run)

    async def _finish(
        self,
        login_id: str,
        binding: str | None,
        state: dict[str, Any],
        profile: TikTokProfile,
        jar: dict[str, str],
    ) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            if r.status in FINAL:
                return _view(r)
            # The warm-up cookies were only needed to poll; the session lives in the vault now.
            r.passport_state = {}
            r.account_unique_id = profile.unique_id
            if r.purpose == "authorize":
                r.result_url = self.oauth.complete_authorization(
                    session, r.request_params, profile, jar
                )
            elif self.on_account_login is not None:
                r.result_url = self.on_account_login(session, r, profile, jar)
            r.status = "done"
            return _view(r)

        return await self._db(run)


def binding_value(row: PendingLogin) -> str:
    """The cookie value that ties a pending login to the browser that started it."""
    return row.csrf_token


def _apply_qr(row: PendingLogin, qr: QRCode) -> None:
    row.qr_token = qr.token
    row.qr_url = qr.qrcode_index_url
    row.qr_expires_at = dt.datetime.fromtimestamp(qr.expire_time, dt.UTC)
