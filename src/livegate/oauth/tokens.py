"""Token rows: lookup by presented value, and every way a token dies."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from livegate import audit
from livegate.db.models import (
    AccessToken,
    Grant,
    RefreshToken,
    SessionKeyWrap,
    TikTokSession,
    utcnow,
)
from livegate.secrets import ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, digest
from livegate.vault import Vault


@dataclass
class Revoked:
    """What a transaction revoked, for whoever acts on it once it commits (the WebSocket
    relays open on those tokens: webcast/relay.py)."""

    token_digests: set[str] = field(default_factory=set)
    grant_ids: set[int] = field(default_factory=set)


_REVOKED = "livegate.revoked"


def _revoked(db: Session) -> Revoked:
    revoked: Revoked = db.info.setdefault(_REVOKED, Revoked())
    return revoked


def take_revoked(db: Session) -> Revoked | None:
    """What the session revoked since the last call (after its commit or rollback)."""
    revoked: Revoked | None = db.info.pop(_REVOKED, None)
    return revoked


def find_access_token(db: Session, token: str) -> AccessToken | None:
    if not token.startswith(ACCESS_TOKEN_PREFIX):
        return None
    return db.scalar(select(AccessToken).where(AccessToken.token_digest == digest(token)))


def find_refresh_token(db: Session, token: str) -> RefreshToken | None:
    if not token.startswith(REFRESH_TOKEN_PREFIX):
        return None
    return db.scalar(select(RefreshToken).where(RefreshToken.token_digest == digest(token)))


def find_token(db: Session, token: str, hint: str | None) -> AccessToken | RefreshToken | None:
    """An access or refresh token by its value; the hint only says which to try first
    (RFC 7009 §2.1, RFC 7662 §2.1: a wrong hint widens the search)."""
    finders = [find_access_token, find_refresh_token]
    if hint == "refresh_token":
        finders.reverse()
    for find in finders:
        row = find(db, token)
        if row is not None:
            return row
    return None


def lock_grant(db: Session, grant_id: int) -> None:
    """Hold the grant's row until this transaction ends.

    Every change to a grant's token family (a code exchange, a refresh, a replay's revocation)
    is made under this lock, so two of them never interleave: a revocation sees every pair
    that a refresh or exchange before it committed, and a refresh that comes after it finds
    its token revoked. Without it a replay could revoke the family while the family's newest
    refresh token was being rotated, and that rotation's pair stayed alive.

    Take it before the reads that decide, and before any token row is written (the order
    every writer keeps: grant, then refresh tokens, then access tokens).
    """
    if db.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks. pysqlite opens the transaction at the first write, and
        # the write lock covers the whole database: a write that changes nothing takes it
        # now, so that the reads after it see every commit before it and none can follow
        # until ours.
        db.execute(update(Grant).where(Grant.id == grant_id).values(status=Grant.status))
    else:
        db.execute(select(Grant.id).where(Grant.id == grant_id).with_for_update())


def claim_refresh_token(db: Session, row: RefreshToken) -> bool:
    """Mark the token rotated, if it still is live: whether this call did it."""
    claimed = db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=utcnow())
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]  # rowcount: CursorResult, typed as Result


def revoke_family(db: Session, family_id: str) -> None:
    """Every token of one code's rotation chain (the caller holds the grant's lock)."""
    for model in (RefreshToken, AccessToken):
        _revoke_where_model(db, model, model.family_id == family_id)


def _revoke_where_model(
    db: Session, model: type[AccessToken] | type[RefreshToken], cond: object
) -> None:
    now = utcnow()
    rows = db.execute(
        select(model.id, model.token_digest).where(model.revoked_at.is_(None), cond)  # type: ignore[arg-type]  # cond: a column clause
    ).all()
    if rows:
        db.execute(update(model).where(model.id.in_([r.id for r in rows])).values(revoked_at=now))
        Vault.destroy_wraps(db, [r.token_digest for r in rows])
        _revoked(db).token_digests.update(r.token_digest for r in rows)


def revoke_access_token(db: Session, row: AccessToken) -> None:
    _revoke_where_model(db, AccessToken, AccessToken.id == row.id)


def revoke_refresh_token(db: Session, row: RefreshToken) -> None:
    """A revoked refresh token takes the access tokens issued with it along (RFC 7009 §2.1)."""
    _revoke_where_model(db, RefreshToken, RefreshToken.id == row.id)
    _revoke_where_model(db, AccessToken, AccessToken.refresh_token_id == row.id)


def end_grant(db: Session, grant: Grant, status: str = "revoked") -> None:
    """Every token of the grant dies at once and the stored TikTok session is destroyed."""
    now = utcnow()
    grant.status = status
    _revoked(db).grant_ids.add(grant.id)
    if status == "revoked":
        grant.revoked_at = now
    for model in (RefreshToken, AccessToken):
        _revoke_where_model(db, model, model.grant_id == grant.id)
    session_ids = select(TikTokSession.id).where(TikTokSession.grant_id == grant.id)
    db.execute(delete(SessionKeyWrap).where(SessionKeyWrap.session_id.in_(session_ids)))
    db.execute(delete(TikTokSession).where(TikTokSession.grant_id == grant.id))
    audit.record(
        db,
        f"grant.{status}",
        client_pk=grant.client_pk,
        grant_id=grant.id,
        account_id=grant.account_id,
    )
