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


def revoke_family(db: Session, family_id: str) -> None:
    for model in (AccessToken, RefreshToken):
        _revoke_where_model(db, model, model.family_id == family_id)


def _revoke_where_model(
    db: Session, model: type[AccessToken] | type[RefreshToken], cond: object
) -> None:
    now = utcnow()
    rows = db.execute(
        select(model.id, model.token_digest).where(model.revoked_at.is_(None), cond)  # type: ignore[arg-type]
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
    for model in (AccessToken, RefreshToken):
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
