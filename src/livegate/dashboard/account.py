"""End users' connected apps: sign-in through the QR flow, the list of grants, revocation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate.config import Settings
from livegate.dashboard import sessions
from livegate.db.models import Grant, PendingLogin, TikTokAccount, WebSession
from livegate.oauth import scopes, tokens
from livegate.oauth.service import upsert_account
from livegate.tiktok.passport import TikTokProfile

ACCOUNT_PATH = "/account"
# A session created by the QR sign-in; the first visit to /account trades it for a new cookie.
PENDING = "account_pending"


def new_signin_params(settings: Settings, session_digest: str) -> dict[str, str]:
    """The pending login's parameters: where a cancel goes, and the session to create."""
    return {"redirect_uri": settings.issuer + ACCOUNT_PATH, "session_digest": session_digest}


AccountLoginHook = Callable[[Session, PendingLogin, TikTokProfile, dict[str, str]], str]


def make_on_account_login(settings: Settings) -> AccountLoginHook:
    """The LoginService hook: the user confirmed on their phone; open their /account session."""

    def on_account_login(
        db: Session, login: PendingLogin, profile: TikTokProfile, jar: dict[str, str]
    ) -> str:
        # The cookie jar is not kept: the connected-apps page never calls TikTok.
        account = upsert_account(db, profile)
        digest = str((login.request_params or {}).get("session_digest") or "")
        if digest:
            now = dt.datetime.now(dt.UTC)
            db.add(
                WebSession(
                    token_digest=digest,
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


class GrantNotYours(LookupError):
    pass


def revoke_app(db: Session, account_id: int, grant_id: int) -> str:
    """End one grant of this account: every token dies, the stored session is destroyed."""
    grant = db.get(Grant, grant_id)
    if grant is None or grant.account_id != account_id:
        raise GrantNotYours(grant_id)
    name = grant.client.name
    if grant.status != "revoked":
        tokens.end_grant(db, grant)
    return name


def account_of(db: Session, row: WebSession) -> TikTokAccount | None:
    return db.get(TikTokAccount, row.account_id) if row.account_id else None


def find_session(db: Session, token: str | None, ttl: int) -> WebSession | None:
    return sessions.find(db, token, ("account", PENDING), ttl)
