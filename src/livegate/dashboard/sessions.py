"""Server-side browser sessions: the cookie holds a random token, the table its digest."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from livegate.db.models import WebSession, utcnow
from livegate.secrets import digest, new_secret

DEVELOPER_COOKIE = "lg_dev"
ACCOUNT_COOKIE = "lg_acct"
PREFIX = "lg_ws_"

# How often last_seen_at (and the sliding expiry) is written at most.
TOUCH_EVERY = dt.timedelta(minutes=1)


def create(
    db: Session,
    kind: str,
    ttl: int,
    *,
    developer_id: int | None = None,
    account_id: int | None = None,
    token: str | None = None,
) -> tuple[str, WebSession]:
    token = token or new_secret(PREFIX)
    now = utcnow()
    row = WebSession(
        token_digest=digest(token),
        kind=kind,
        developer_id=developer_id,
        account_id=account_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(seconds=ttl),
    )
    db.add(row)
    db.flush()
    return token, row


def find(db: Session, token: str | None, kinds: tuple[str, ...], ttl: int) -> WebSession | None:
    """The live session behind a cookie value, its expiry slid forward."""
    if not token or not token.startswith(PREFIX):
        return None
    row = db.scalar(select(WebSession).where(WebSession.token_digest == digest(token)))
    now = utcnow()
    if row is None or row.kind not in kinds or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = now + dt.timedelta(seconds=ttl)
    return row


def rotate(db: Session, row: WebSession, kind: str) -> str:
    """A new cookie value for the same session (after sign-in: no session fixation)."""
    token = new_secret(PREFIX)
    row.token_digest = digest(token)
    row.kind = kind
    return token


def end(db: Session, token: str | None) -> None:
    if token:
        db.execute(delete(WebSession).where(WebSession.token_digest == digest(token)))


def purge(db: Session) -> int:
    result = db.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
