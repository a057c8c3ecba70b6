"""The one write of a lean token response: the presented code or refresh token is claimed,
the new pair inserted, the session's data key wrapped for it (the presented secret's wrapping
deleted), the grant's last use and the audit event recorded.

On PostgreSQL that is one statement: data-modifying CTEs, each of which acts only if the claim
did, so a token or code that another request claimed first (a lost race) leaves everything
as it was and the statement returns no row. SQLite has no DML in CTEs: there the same steps
are separate statements in the transaction, after the claim.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, insert, literal, select, update
from sqlalchemy.sql.expression import CTE

from livegate.db.models import AuditEvent
from livegate.oauth.lean.reads import ACCESS, CODES, GRANTS, REFRESH, WRAPS

AUDIT: Table = AuditEvent.__table__  # type: ignore[assignment]  # a Table, typed FromClause

_WRAP_COLUMNS = (
    "session_id",
    "secret_kind",
    "secret_digest",
    "server_key_id",
    "salt",
    "nonce",
    "wrapped_key",
    "expires_at",
)


@dataclass
class Issue:
    """Everything the write needs; `claim` is the presented row: ("refresh" | "code", id)."""

    claim: tuple[str, int]
    now: dt.datetime
    grant_id: int
    client_pk: int
    family_id: str
    scope: str
    refresh_digest: str
    refresh_expires: dt.datetime
    access_digest: str
    access_expires: dt.datetime
    grant_type: str
    # New wrappings (columns of session_key_wraps) and the presented secret's digest.
    wraps: list[dict[str, Any]] = field(default_factory=list)
    spent_digest: str | None = None

    def refresh_row(self) -> dict[str, Any]:
        return self._token_row(self.refresh_digest, self.refresh_expires)

    def access_row(self) -> dict[str, Any]:
        return self._token_row(self.access_digest, self.access_expires)

    def _token_row(self, token_digest: str, expires_at: dt.datetime) -> dict[str, Any]:
        """The columns a refresh and an access token row share."""
        return {
            "token_digest": token_digest,
            "grant_id": self.grant_id,
            "client_pk": self.client_pk,
            "family_id": self.family_id,
            "scope": self.scope,
            "expires_at": expires_at,
            "created_at": self.now,
        }

    def audit_row(self) -> dict[str, Any]:
        return {
            "at": self.now,
            "kind": "token.issued",
            "client_pk": self.client_pk,
            "grant_id": self.grant_id,
            "account_id": None,
            "detail": {"grant_type": self.grant_type},
        }


def _claim_statement(issue: Issue) -> Any:
    kind, row_id = issue.claim
    if kind == "refresh":
        return (
            update(REFRESH)
            .where(REFRESH.c.id == row_id, REFRESH.c.rotated_at.is_(None))
            .where(REFRESH.c.revoked_at.is_(None))
            .values(rotated_at=issue.now)
            .returning(REFRESH.c.id)
        )
    return (
        update(CODES)
        .where(CODES.c.id == row_id, CODES.c.used_at.is_(None))
        .values(used_at=issue.now, family_id=issue.family_id)
        .returning(CODES.c.id)
    )


def _values(table: Table, row: dict[str, Any], *extra: Any) -> list[Any]:
    """The row's values as typed literals, for INSERT ... SELECT."""
    return [literal(value, table.c[name].type) for name, value in row.items()] + list(extra)


def _insert_from(table: Table, row: dict[str, Any], source: CTE, extra: dict[str, Any]) -> Any:
    names = list(row) + list(extra)
    chosen = select(*_values(table, row, *extra.values())).select_from(source)
    return insert(table).from_select(names, chosen)


def issue_postgresql(conn: Connection, issue: Issue) -> bool:
    """The whole write in one statement; whether the claim succeeded."""
    claimed = _claim_statement(issue).cte("claimed")
    new_refresh = (
        _insert_from(REFRESH, issue.refresh_row(), claimed, {})
        .returning(REFRESH.c.id)
        .cte("new_refresh")
    )
    new_access = (
        _insert_from(
            ACCESS, issue.access_row(), new_refresh, {"refresh_token_id": new_refresh.c.id}
        )
        .returning(ACCESS.c.id)
        .cte("new_access")
    )
    ctes: list[CTE] = [claimed, new_refresh, new_access]
    for n, wrap in enumerate(issue.wraps):
        ctes.append(_insert_from(WRAPS, wrap, claimed, {}).cte(f"wrap_{n}"))
    if issue.spent_digest is not None:
        spent = delete(WRAPS).where(
            WRAPS.c.secret_digest == issue.spent_digest, exists(select(claimed.c.id))
        )
        ctes.append(spent.cte("spent"))
    used = (
        update(GRANTS)
        .where(GRANTS.c.id == issue.grant_id, exists(select(claimed.c.id)))
        .values(last_used_at=issue.now)
    )
    ctes.append(used.cte("used"))
    ctes.append(_insert_from(AUDIT, issue.audit_row(), claimed, {}).cte("audited"))
    statement = select(new_access.c.id).add_cte(*ctes)
    return conn.execute(statement).first() is not None


def issue_sqlite(conn: Connection, issue: Issue) -> bool:
    """The same steps one statement at a time (the caller holds SQLite's write lock)."""
    if conn.execute(_claim_statement(issue)).first() is None:
        return False
    refresh_id = conn.execute(
        insert(REFRESH).values(issue.refresh_row()).returning(REFRESH.c.id)
    ).scalar_one()
    conn.execute(insert(ACCESS).values({**issue.access_row(), "refresh_token_id": refresh_id}))
    if issue.wraps:
        conn.execute(insert(WRAPS), issue.wraps)
    if issue.spent_digest is not None:
        conn.execute(delete(WRAPS).where(WRAPS.c.secret_digest == issue.spent_digest))
    conn.execute(update(GRANTS).where(GRANTS.c.id == issue.grant_id).values(last_used_at=issue.now))
    conn.execute(insert(AUDIT).values(issue.audit_row()))
    return True


def issue(conn: Connection, plan: Issue) -> bool:
    if conn.dialect.name == "postgresql":
        return issue_postgresql(conn, plan)
    return issue_sqlite(conn, plan)
