"""The QR sign-in state machine behind the consent and QR pages.

A pending login advances only when the browser asks (page load or status poll), at most once
per poll interval, whichever request claims the slot; so any number of open tabs cause one
upstream poll per interval.

Every request of the sign-in brings the browser's binding secret (a cookie); the row keeps
only its digest, and whatever TikTok would honour is sealed under it (`sealed.py`). So the
state survives a poll that lands on another gateway process, and a database dump opens nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
from authlib.common.urls import add_params_to_uri, url_decode, url_encode
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from livegate import audit
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import PendingLogin, utcnow
from livegate.errors import LivegateError
from livegate.login import sealed, strings
from livegate.login.sealed import LoginSecrets
from livegate.oauth.service import OAuthService
from livegate.secrets import digest, digest_matches
from livegate.tiktok.cookies import has_login_cookie, keep_session_cookies
from livegate.tiktok.errors import SessionExpired, UpstreamError
from livegate.tiktok.passport import PassportClient, QRCode, QRPoll, TikTokProfile
from livegate.vault import VaultError

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


@dataclass(frozen=True)
class NewLogin:
    """A sign-in just created, and the binding secret only the starting browser will hold."""

    id: str
    binding: str

    @property
    def csrf_token(self) -> str:
        return sealed.csrf_token(self.binding)


def login_expired() -> LivegateError:
    """No sign-in for this browser: unknown, expired, or started by another browser."""
    return LivegateError(404, "login_expired", strings.STRINGS["login_expired"])


def bad_csrf() -> LivegateError:
    return LivegateError(403, "invalid_request", strings.STRINGS["bad_csrf"])


def qr_version(qr_url: str | None) -> str:
    """Changes whenever TikTok issues a new QR code; tells the page to reload the image."""
    return hashlib.sha256(qr_url.encode()).hexdigest()[:12] if qr_url else ""


def without_code(url: str, code: str) -> str:
    """The redirect Authlib built, less the code: what the pending sign-in may keep."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in url_decode(parts.query) if not (k == "code" and v == code)]
    return urlunsplit(parts._replace(query=url_encode(kept)))


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
        self.authorizations = oauth.authorizations
        self.vault = oauth.vault
        self.passport = passport
        # The connected-apps page signs users in with the same QR flow; it supplies this.
        self.on_account_login = on_account_login

    async def _db(self, fn: Callable[[Session], T], *, autocommit: bool = False) -> T:
        """`fn` in the threadpool. `autocommit` for the steps whose only write is one
        statement on the sign-in's row (no BEGIN or COMMIT round trips)."""
        return await anyio.to_thread.run_sync(lambda: self.db.run(fn, autocommit=autocommit))

    # -- rows, seals, views ------------------------------------------------------------------

    def _load(self, session: Session, login_id: str, binding: str) -> PendingLogin:
        row = session.get(PendingLogin, login_id)
        if row is None or row.expires_at <= utcnow():
            raise login_expired()
        # The browser that started the flow holds the binding cookie; nobody else may drive it.
        if not binding or not digest_matches(binding, row.binding_digest):
            raise login_expired()
        return row

    def _open(self, row: PendingLogin, binding: str) -> LoginSecrets:
        try:
            return sealed.open_sealed(self.vault, binding, row.id, row.sealed)
        except VaultError:
            # Sealed under a server key no longer configured: the sign-in cannot go on.
            raise login_expired() from None

    def _result_url(self, row: PendingLogin, binding: str) -> str | None:
        if row.result_url and row.status == "done" and row.purpose == "authorize":
            code = sealed.authorization_code(binding, row.id)
            return add_params_to_uri(row.result_url, [("code", code)])
        return row.result_url

    def _view(
        self, row: PendingLogin, binding: str, held: LoginSecrets | None, message: str | None = None
    ) -> LoginView:
        return LoginView(
            id=row.id,
            status=row.status,
            purpose=row.purpose,
            qr_url=held.qr_url if held else None,
            qr_expires_at=row.qr_expires_at,
            result_url=self._result_url(row, binding),
            message=message or row.message,
            unique_id=row.account_unique_id,
        )

    def _load_view(self, session: Session, login_id: str, binding: str) -> LoginView:
        row = self._load(session, login_id, binding)
        return self._view(row, binding, self._open(row, binding))

    # -- lifecycle --------------------------------------------------------------------------

    def create(
        self, session: Session, *, purpose: str, params: dict[str, Any], client_pk: int | None
    ) -> NewLogin:
        now = utcnow()
        new = NewLogin(id=pysecrets.token_urlsafe(24), binding=sealed.new_binding())
        row = PendingLogin(
            id=new.id,
            purpose=purpose,
            client_pk=client_pk,
            request_params=params,
            binding_digest=digest(new.binding),
            status="consent",
            expires_at=now + dt.timedelta(seconds=self.settings.login_ttl),
        )
        session.add(row)
        session.flush()
        if client_pk is not None:
            audit.record(session, "authorization.started", client_pk=client_pk)
        return new

    # The public methods take the binding cookie as the browser sent it (maybe none).

    async def view(self, login_id: str, cookie: str | None) -> LoginView:
        binding = cookie or ""
        return await self._db(lambda s: self._load_view(s, login_id, binding), autocommit=True)

    async def start(self, login_id: str, cookie: str | None, csrf: str | None) -> LoginView:
        """The user pressed "Continue with TikTok": fetch the first QR code."""
        binding = cookie or ""
        row = await self._db(
            lambda s: self._check_csrf(self._load(s, login_id, binding), binding, csrf),
            autocommit=True,
        )
        if row.sealed:
            return await self.view(login_id, binding)
        try:
            state, qr = await self.passport.start()
        except UpstreamError as exc:
            log.warning("passport start failed: %s", exc.code)
            message = "TikTok is not answering right now. Please try again."
            return self._view(row, binding, None, message)
        held = LoginSecrets(passport=state)
        return await self._save(login_id, binding, held, status="new", qr=qr, next_poll_at=utcnow())

    async def cancel(self, login_id: str, cookie: str | None, csrf: str | None) -> str:
        binding = cookie or ""

        def run(session: Session) -> str:
            row = self._check_csrf(self._load(session, login_id, binding), binding, csrf)
            row.status = "refused"
            row.sealed = None
            row.result_url = self.authorizations.deny_redirect(row.request_params)
            audit.record(session, "authorization.refused", client_pk=row.client_pk, by="consent")
            return row.result_url

        return await self._db(run)

    @staticmethod
    def _check_csrf(row: PendingLogin, binding: str, csrf: str | None) -> PendingLogin:
        if not csrf or not pysecrets.compare_digest(csrf, sealed.csrf_token(binding)):
            raise bad_csrf()
        return row

    # -- polling ----------------------------------------------------------------------------

    async def step(self, login_id: str, cookie: str | None) -> LoginView:
        """Advance the sign-in by at most one upstream poll, and say where it stands."""
        now = utcnow()
        binding = cookie or ""

        def claim(session: Session) -> tuple[PendingLogin, LoginSecrets, bool]:
            # One statement when the slot is free: the claim reads the row it takes. Only
            # the browser holding the binding claims, and only a sign-in still waiting.
            interval = dt.timedelta(seconds=self.settings.qr_poll_interval)
            claimed = session.scalar(
                update(PendingLogin)
                .where(
                    PendingLogin.id == login_id,
                    PendingLogin.binding_digest == digest(binding),
                    PendingLogin.expires_at > now,
                    PendingLogin.status.not_in([*FINAL, "consent"]),
                    PendingLogin.sealed.is_not(None),
                    or_(PendingLogin.next_poll_at.is_(None), PendingLogin.next_poll_at <= now),
                )
                .values(next_poll_at=now + interval)
                .returning(PendingLogin)
                .execution_options(synchronize_session=False)
            )
            if claimed is not None:
                held = self._open(claimed, binding)
                return claimed, held, bool(held.qr_token)
            row = self._load(session, login_id, binding)
            return row, self._open(row, binding), False

        row, held, claimed = await self._db(claim, autocommit=True)
        if not claimed:
            return self._view(row, binding, held)
        # A fresh copy for the passport client to update in place.
        held = replace(held, passport=dict(held.passport))
        state = held.passport
        token = held.qr_token or ""
        try:
            if row.status == "confirmed" and held.jar:
                # The QR token is spent once confirmed; only the profile read is retried.
                poll = QRPoll(status="confirmed", cookies=dict(held.jar))
            elif row.qr_expires_at and row.qr_expires_at <= now:
                poll = QRPoll(status="expired")
            else:
                poll = await self.passport.poll(state, token)
            if poll.status == "expired":
                qr = await self.passport.new_qr(state)
                return await self._save(login_id, binding, held, status="new", qr=qr)
            if poll.status == "confirmed":
                jar = keep_session_cookies(poll.cookies)
                if not has_login_cookie(jar):
                    return await self._fail(login_id, binding, "TikTok did not return a session.")
                held.jar = jar
                await self._save(login_id, binding, held, status="confirmed")
                profile = await self.passport.fetch_profile(jar)
                return await self._finish(login_id, binding, profile, jar)
        except SessionExpired:
            return await self._fail(login_id, binding, "TikTok ended the session right away.")
        except UpstreamError as exc:
            log.warning("passport poll failed: %s", exc.code)
            message = "TikTok is not answering right now; still trying."
            return await self._save(login_id, binding, held, message=message)
        if poll.status == "refused":
            return await self._refuse(login_id, binding)
        if poll.status == "slow_down":
            retry = dt.timedelta(seconds=poll.retry_after or 120)
            return await self._save(login_id, binding, held, next_poll_at=utcnow() + retry)
        status = poll.status if poll.status in ("new", "scanned", "verify") else row.status
        return await self._save(login_id, binding, held, status=status)

    async def _save(
        self,
        login_id: str,
        binding: str,
        held: LoginSecrets,
        *,
        status: str | None = None,
        qr: QRCode | None = None,
        next_poll_at: dt.datetime | None = None,
        message: str | None = None,
    ) -> LoginView:
        """What a poll (or the start) learnt, sealed again: one UPDATE of a sign-in still
        going on, which returns the row the view is made of."""
        kept = _with_qr(held, qr) if qr else held
        values: dict[str, Any] = {
            "sealed": sealed.seal(self.vault, binding, login_id, kept),
            "message": message,
        }
        if qr:
            values["qr_expires_at"] = dt.datetime.fromtimestamp(qr.expire_time, dt.UTC)
        if status:
            values["status"] = status
        if next_poll_at:
            values["next_poll_at"] = next_poll_at

        def run(session: Session) -> LoginView:
            saved = session.scalar(
                update(PendingLogin)
                .where(
                    PendingLogin.id == login_id,
                    PendingLogin.binding_digest == digest(binding),
                    PendingLogin.expires_at > utcnow(),
                    PendingLogin.status.not_in(FINAL),
                )
                .values(**values)
                .returning(PendingLogin)
                .execution_options(synchronize_session=False)
            )
            if saved is not None:
                return self._view(saved, binding, kept)
            r = self._load(session, login_id, binding)  # ended meanwhile (or expired)
            return self._view(r, binding, None)

        return await self._db(run, autocommit=True)

    async def _fail(self, login_id: str, binding: str, message: str) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            r.status = "error"
            r.sealed = None
            r.message = message
            audit.record(session, "authorization.failed", client_pk=r.client_pk)
            return self._view(r, binding, None)

        return await self._db(run)

    async def _refuse(self, login_id: str, binding: str) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            r.status = "refused"
            r.sealed = None
            r.message = None
            if r.purpose == "authorize":
                r.result_url = self.authorizations.deny_redirect(r.request_params)
            audit.record(session, "authorization.refused", client_pk=r.client_pk, by="tiktok")
            return self._view(r, binding, None)

        return await self._db(run)

    async def _finish(
        self, login_id: str, binding: str, profile: TikTokProfile, jar: dict[str, str]
    ) -> LoginView:
        def run(session: Session) -> LoginView:
            r = self._load(session, login_id, binding)
            if r.status in FINAL:
                return self._view(r, binding, None)
            # The row changes once the grant is made: one UPDATE at the commit.
            with session.no_autoflush:
                if r.purpose == "authorize":
                    code = sealed.authorization_code(binding, r.id)
                    url = self.authorizations.complete(
                        session, r.request_params, profile, jar, code
                    )
                    r.result_url = without_code(url, code)
                elif self.on_account_login is not None:
                    r.result_url = self.on_account_login(session, r, profile, jar)
            # The warm-up cookies were only needed to poll; the session lives in the vault now.
            r.sealed = None
            r.message = None
            r.account_unique_id = profile.unique_id
            r.status = "done"
            return self._view(r, binding, None)

        return await self._db(run)


def binding_value(login: NewLogin) -> str:
    """The cookie value that ties a pending login to the browser that started it."""
    return login.binding


def _with_qr(held: LoginSecrets, qr: QRCode) -> LoginSecrets:
    return replace(held, qr_token=qr.token, qr_url=qr.qrcode_index_url)
