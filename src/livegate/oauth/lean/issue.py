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
from functools import cache
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import Connection, Table, bindparam, delete, exists, insert, select, update
from sqlalchemy.sql.expression import CTE

from livegate.db.hot import HotConnection
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

TOKEN_COLUMNS: tuple[str, ...] = ("token_digest", "grant_id", "client_pk", "family_id", "scope")
TOKEN_COLUMNS += ("expires_at", "created_at")
AUDIT_COLUMNS = ("at", "kind", "client_pk", "grant_id", "account_id", "detail")


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
        values = (token_digest, self.grant_id, self.client_pk, self.family_id, self.scope)
        return dict(zip(TOKEN_COLUMNS, (*values, expires_at, self.now), strict=True))

    def audit_row(self) -> dict[str, Any]:
        detail = {"grant_type": self.grant_type}
        values = (self.now, "token.issued", self.client_pk, self.grant_id, None, detail)
        return dict(zip(AUDIT_COLUMNS, values, strict=True))


def _claim(kind: str, locked: CTE | None = None) -> Any:
    """Marks the presented refresh token rotated, or the code used, if nobody has (and, with
    `locked`, only once the grant's row is locked and the grant still active)."""
    after = [exists(select(locked.c.id))] if locked is not None else []
    if kind == "refresh":
        return (
            update(REFRESH)
            .where(REFRESH.c.id == bindparam("claim_id"), REFRESH.c.rotated_at.is_(None))
            .where(REFRESH.c.revoked_at.is_(None), *after)
            .values(rotated_at=bindparam("now", type_=REFRESH.c.rotated_at.type))
            .returning(REFRESH.c.id)
        )
    return (
        update(CODES)
        .where(CODES.c.id == bindparam("claim_id"), CODES.c.used_at.is_(None), *after)
        .values(
            used_at=bindparam("now", type_=CODES.c.used_at.type),
            family_id=bindparam("claim_family", type_=CODES.c.family_id.type),
        )
        .returning(CODES.c.id)
    )


def _insert_from(table: Table, prefix: str, names: list[str], source: CTE, extra: Any = ()) -> Any:
    """INSERT ... SELECT of one row of bound parameters (named prefix_column), once per claim."""
    values = [bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in names]
    chosen = select(*values, *[value for _, value in extra]).select_from(source)
    return insert(table).from_select(names + [name for name, _ in extra], chosen)


@cache
def _write(kind: str, wraps: int, spent: bool) -> Any:
    """The whole write as one statement with bound parameters (`_parameters`), built once per
    shape: building a statement this size costs more than executing it.

    Its first step locks the grant's row (`FOR UPDATE`, as `tokens.lock_grant` does for the
    ORM path: every change to a grant's token family is made under that lock, grant first,
    then tokens) and checks that the grant is still active; the claim waits for it (it reads
    `locked`), and everything else waits for the claim. So the statement stands alone, in
    autocommit: the read before it took no lock, and whatever that read saw that a concurrent
    request can change (the token rotated or revoked, the code used, the grant ended) is
    checked again here, on the rows' latest versions.
    """
    locked = (
        select(GRANTS.c.id)
        .where(GRANTS.c.id == bindparam("used_grant"), GRANTS.c.status == bindparam("active"))
        .with_for_update()
        .cte("locked")
    )
    claimed = _claim(kind, locked).cte("claimed")
    new_refresh = (
        _insert_from(REFRESH, "refresh", list(TOKEN_COLUMNS), claimed)
        .returning(REFRESH.c.id)
        .cte("new_refresh")
    )
    refresh_id = [("refresh_token_id", new_refresh.c.id)]
    new_access = (
        _insert_from(ACCESS, "access", list(TOKEN_COLUMNS), new_refresh, refresh_id)
        .returning(ACCESS.c.id)
        .cte("new_access")
    )
    ctes: list[CTE] = [locked, claimed, new_refresh, new_access]
    for n in range(wraps):
        ctes.append(_insert_from(WRAPS, f"wrap{n}", list(_WRAP_COLUMNS), claimed).cte(f"wrap_{n}"))
    if spent:
        spent_wrap = delete(WRAPS).where(
            WRAPS.c.secret_digest == bindparam("spent_digest"), exists(select(claimed.c.id))
        )
        ctes.append(spent_wrap.cte("spent"))
    used = (
        update(GRANTS)
        .where(GRANTS.c.id == bindparam("used_grant"), exists(select(claimed.c.id)))
        .values(last_used_at=bindparam("now", type_=GRANTS.c.last_used_at.type))
    )
    ctes.append(used.cte("used"))
    ctes.append(_insert_from(AUDIT, "audit", list(AUDIT_COLUMNS), claimed).cte("audited"))
    return select(new_access.c.id).add_cte(*ctes)


# No parameter is named like a column: SQLAlchemy would take it as a value to SET in the
# UPDATEs (hence claim_family, used_grant, and the prefixed row values).
def _claim_parameters(issue: Issue) -> dict[str, Any]:
    return {"claim_id": issue.claim[1], "now": issue.now, "claim_family": issue.family_id}


def _parameters(issue: Issue) -> dict[str, Any]:
    params = _claim_parameters(issue) | {"used_grant": issue.grant_id, "active": "active"}
    for prefix, row in (
        ("refresh", issue.refresh_row()),
        ("access", issue.access_row()),
        ("audit", issue.audit_row()),
        *((f"wrap{n}", wrap) for n, wrap in enumerate(issue.wraps)),
    ):
        params |= {f"{prefix}_{name}": value for name, value in row.items()}
    if issue.spent_digest is not None:
        params["spent_digest"] = issue.spent_digest
    return params


async def issue_postgresql(conn: HotConnection, issue: Issue) -> bool:
    """The whole write in one statement; whether the claim succeeded."""
    statement = _write(issue.claim[0], len(issue.wraps), issue.spent_digest is not None)
    params = _parameters(issue)
    params["audit_detail"] = Json(params["audit_detail"])
    return await conn.first(statement, params) is not None


def issue_sqlite(conn: Connection, issue: Issue) -> bool:
    """The same steps one statement at a time (the caller holds SQLite's write lock)."""
    if conn.execute(_claim(issue.claim[0]), _claim_parameters(issue)).first() is None:
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
