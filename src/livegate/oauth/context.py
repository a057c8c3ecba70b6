"""Per-request state that Authlib's callbacks need but its signatures do not carry."""

from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy.orm import Session

current_db: ContextVar[Session] = ContextVar("livegate_db")


def db() -> Session:
    return current_db.get()
