"""End users' connected apps: sign-in through the QR flow, the list of grants, revocation.

No HTTP; every function takes the database `Session` first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate.config import Settings
from livegate.dashboard import sessions
from livegate.dashboard.strings import STRINGS
from livegate.db.models import Grant, PendingLogin, TikTokAccount, WebSession, utcnow
from livegate.errors import LivegateError
from livegate.login.service import LoginService, NewLogin
from livegate.oauth import scopes, tokens
from livegate.oauth.service import upsert_account
from livegate.secrets import digest, new_secret
from livegate.tiktok.passport import TikTokProfile

ACCOUNT_PATH = "/account"
# A session created by the QR sign-in; the first visit to /account trades it for a new cookie.
PENDING = "account_pending"


def new_signin_params(settings: Settings, session_digest: str) -> dict[str, str]:
    """The pending login's parameters: where a cancel goes, and the session to create."""
    return {"redirect_uri": settings.issuer + ACCOUNT_PATH, "session_digest": session_digest}


def start_sign_in(db: Session, logins: LoginService) -> tuple[NewLogin, str]:
    """A QR sign-in to /account, and the cookie value that becomes the /account session once
    the user confirms on their phone (the pending login keeps only its digest)."""
    pending = new_secret(sessions.PREFIX)
    params = new_signin_params(logins.settings, digest(pending))
    login = logins.create(db, purpose="account", params=params, client_pk=None)
    return login, pending


AccountLoginHook = Callable[[Session, PendingLogin, TikTokProfile, dict[str, str]], str]


def make_on_account_login(settings: Settings) -> AccountLoginHook:
    """The LoginService hook: the user confirmed on their phone; open their /account session."""

    def on_account_login(
        db: Session, login: PendingLogin, profile: TikTokProfile, jar: dict[str, str]
    ) -> str:
        # The cookie jar is not kept: the connected-apps page never calls TikTok.
        account = upsert_account(db, profile)
        session_digest = str((login.request_params or {}).get("session_digest") or "")
        if session_digest:
            now = dt.datetime.now(dt.UTC)
            db.add(
                WebSession(
                    token_digest=session_digest,
                    kind=PENDING,
                    account_id=account.id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + dt.timedelta(seconds=settings.login_ttl),
                )
            )
            db.flush()
        return ACCOUNT_PATH

    return on_account_login


@dataclass
class ConnectedApp:
    grant_id: int
    name: str
    logo_url: str | None
    homepage_url: str | None
    scopes: list[scopes.ScopeInfo]
    granted_at: dt.datetime
    last_used_at: dt.datetime | None
    status: str


def connected_apps(db: Session, account_id: int) -> list[ConnectedApp]:
    rows = db.scalars(
        select(Grant)
        .where(Grant.account_id == account_id, Grant.status.in_(("active", "login_required")))
        .order_by(Grant.created_at.desc())
    )
    return [
        ConnectedApp(
            grant_id=g.id,
            name=g.client.name,
            logo_url=g.client.logo_url,
            homepage_url=g.client.homepage_url,
            scopes=scopes.describe(list(g.scopes)),
            granted_at=g.created_at,
            last_used_at=g.last_used_at,
            status=g.status,
        )
        for g in rows
    ]


@dataclass
class AppsPage:
    apps: list[ConnectedApp]
    # The app the last revocation disconnected (the page says so), if it was this account's.
    revoked: str | None
    # When this visit finished the QR sign-in: the session's new cookie value, and the session.
    renewed: tuple[str, WebSession] | None


def apps_page(
    db: Session, session_id: int, account_id: int, revoked_id: int | None, ttl: int
) -> AppsPage:
    """The connected-apps page of a signed-in account."""
    renewed = finish_sign_in(db, session_id, ttl)
    revoked = None
    if revoked_id is not None:
        g = db.get(Grant, revoked_id)
        if g is not None and g.account_id == account_id and g.status == "revoked":
            revoked = g.client.name
    return AppsPage(connected_apps(db, account_id), revoked, renewed)


def finish_sign_in(db: Session, session_id: int, ttl: int) -> tuple[str, WebSession] | None:
    """The first visit after the QR sign-in: the pending session becomes the real one under a
    new cookie value (no session fixation). None for a session already finished."""
    live = db.get(WebSession, session_id)
    if live is None or live.kind != PENDING:
        return None
    token = sessions.rotate(db, live, "account")
    live.expires_at = utcnow() + dt.timedelta(seconds=ttl)
    return token, live


def revoke_app(db: Session, account_id: int, grant_id: int) -> str:
    """End one grant of this account: every token dies, the stored session is destroyed."""
    grant = db.get(Grant, grant_id)
    if grant is None or grant.account_id != account_id:
        raise LivegateError(404, "not_found", STRINGS["app_not_found"])
    name = grant.client.name
    if grant.status != "revoked":
        tokens.end_grant(db, grant)
    return name


def signed_in(db: Session, token: str | None, ttl: int) -> tuple[WebSession, TikTokAccount] | None:
    """The /account session behind the cookie (finished or pending), and its account."""
    row = sessions.find(db, token, ("account", PENDING), ttl)
    if row is None or row.account_id is None:
        return None
    account = db.get(TikTokAccount, row.account_id)
    return None if account is None else (row, account)
