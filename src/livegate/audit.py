"""Audit events: what happened to which client and grant. Never carries a secret."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from livegate.db.models import AuditEvent


def record(
    db: Session,
    kind: str,
    *,
    client_pk: int | None = None,
    grant_id: int | None = None,
    account_id: int | None = None,
    **detail: Any,
) -> None:
    db.add(
        AuditEvent(
            kind=kind, client_pk=client_pk, grant_id=grant_id, account_id=account_id, detail=detail
        )
    )
