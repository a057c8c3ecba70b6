"""Purging what has expired, in batches, so no table grows without bound."""

from __future__ import annotations

import datetime as dt
import logging

import anyio
import anyio.to_thread
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import (
    AccessToken,
    AuthorizationCode,
    PendingLogin,
    RefreshToken,
    SessionKeyWrap,
    WebSession,
    utcnow,
)

log = logging.getLogger(__name__)

# Expired rows linger this long, so a late replay is still recognised as one.
GRACE = dt.timedelta(hours=1)


def purge(session: Session, batch: int = 1000) -> dict[str, int]:
    now = utcnow()
    counts: dict[str, int] = {}
    for name, model, column in (
        ("session_key_wraps", SessionKeyWrap, SessionKeyWrap.expires_at),
        ("authorization_codes", AuthorizationCode, AuthorizationCode.expires_at),
        ("access_tokens", AccessToken, AccessToken.expires_at),
        ("refresh_tokens", RefreshToken, RefreshToken.expires_at),
        ("pending_logins", PendingLogin, PendingLogin.expires_at),
        ("web_sessions", WebSession, WebSession.expires_at),
    ):
        cutoff = now if model is SessionKeyWrap else now - GRACE
        ids = list(session.scalars(select(model.id).where(column <= cutoff).limit(batch)))
        if model is RefreshToken and ids:
            # Access tokens point at their refresh token; keep the reference valid.
            session.execute(
                update(AccessToken)
                .where(AccessToken.refresh_token_id.in_(ids))
                .values(refresh_token_id=None)
            )
        if ids:
            session.execute(delete(model).where(model.id.in_(ids)))
        counts[name] = len(ids)
    return counts


def purge_all(database: Database, batch: int = 1000) -> dict[str, int]:
    """Purge until nothing expired is left; one transaction per batch."""
    total: dict[str, int] = {}
    while True:
        with database.session() as session:
            counts = purge(session, batch)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        if not any(v >= batch for v in counts.values()):
            return total


async def purge_loop(settings: Settings, database: Database) -> None:
    while True:
        await anyio.sleep(settings.purge_interval)
        try:
            counts = await anyio.to_thread.run_sync(purge_all, database)
            if any(counts.values()):
                log.info("purged %s", counts)
        except Exception:
            log.exception("purge failed")
