"""API keys: created once, stored as digests, looked up by presented value."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate import audit
from livegate.db.models import ApiKey, utcnow
from livegate.secrets import API_KEY_PREFIX, digest, new_secret


def create_api_key(
    db: Session, *, name: str = "", client_pk: int | None = None, owner_id: int | None = None
) -> tuple[str, ApiKey]:
    key = new_secret(API_KEY_PREFIX)
    row = ApiKey(
        key_digest=digest(key),
        prefix=key[: len(API_KEY_PREFIX) + 4],
        name=name,
        client_pk=client_pk,
        owner_id=owner_id,
    )
    db.add(row)
    db.flush()
    audit.record(db, "apikey.created", client_pk=client_pk)
    return key, row


def find_api_key(db: Session, key: str) -> ApiKey | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    row = db.scalar(select(ApiKey).where(ApiKey.key_digest == digest(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_api_key(db: Session, row: ApiKey) -> None:
    row.revoked_at = utcnow()
    audit.record(db, "apikey.revoked", client_pk=row.client_pk)
