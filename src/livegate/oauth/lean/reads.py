"""The one read behind each lean OAuth request: the presented code or token with its grant,
the client it was issued to, the user's account and the wrapping of the session's data key.

On PostgreSQL no read takes a lock: the token endpoint's write locks the grant's row itself and
checks again what a concurrent request could have changed since the read (`issue._write`). On
SQLite, which has no row locks, a write that changes nothing takes the database's write lock
before the read (`lock_sqlite`), and the read and the writes share its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, select, update

from livegate.db.hot import HotConnection
from livegate.db.models import (
    AccessToken,
    AuthorizationCode,
    Grant,
    OAuthClient,
    RefreshToken,
    SessionKeyWrap,
    TikTokAccount,
)

ACCESS: Table = AccessToken.__table__  # type: ignore[assignment]  # a Table, typed FromClause
REFRESH: Table = RefreshToken.__table__  # type: ignore[assignment]
CODES: Table = AuthorizationCode.__table__  # type: ignore[assignment]
GRANTS: Table = Grant.__table__  # type: ignore[assignment]
CLIENTS: Table = OAuthClient.__table__  # type: ignore[assignment]
ACCOUNTS: Table = TikTokAccount.__table__  # type: ignore[assignment]
WRAPS: Table = SessionKeyWrap.__table__  # type: ignore[assignment]

_CLIENT_COLUMNS = (
    "id",
    "client_id",
    "secret_digest",
    "previous_secret_digest",
    "previous_secret_expires_at",
    "redirect_uris",
    "scopes",
    "is_public",
)

_WRAP_COLUMNS = ("session_id", "secret_kind", "server_key_id", "salt", "nonce", "wrapped_key")


@dataclass(frozen=True)
class ClientView:
    """A client's row as client authentication reads it (see adapters.Client)."""

    id: int
    client_id: str
    secret_digest: str | None
    previous_secret_digest: str | None
    previous_secret_expires_at: Any
    redirect_uris: list[str]
    scopes: list[str]
    is_public: bool

    @classmethod
    def from_row(cls, row: Any, prefix: str = "") -> ClientView:
        return cls(**{name: getattr(row, prefix + name) for name in _CLIENT_COLUMNS})


def _presented(table: Table, digest_column: str, *, wrap: bool) -> Select[Any]:
    columns: list[Any] = [c.label(f"t_{c.name}") for c in table.c]
    columns += [GRANTS.c.status.label("grant_status"), GRANTS.c.expires_at.label("grant_expires")]
    columns += [CLIENTS.c[name].label(f"c_{name}") for name in _CLIENT_COLUMNS]
    columns += [ACCOUNTS.c.uid.label("account_uid"), ACCOUNTS.c.unique_id.label("account_name")]
    joined = (
        table.join(GRANTS, GRANTS.c.id == table.c.grant_id)
        .join(CLIENTS, CLIENTS.c.id == table.c.client_pk)
        .join(ACCOUNTS, ACCOUNTS.c.id == GRANTS.c.account_id)
    )
    if wrap:
        columns += [WRAPS.c[name].label(f"w_{name}") for name in _WRAP_COLUMNS]
        joined = joined.outerjoin(WRAPS, WRAPS.c.secret_digest == table.c[digest_column])
    return select(*columns).select_from(joined).where(table.c[digest_column] == bindparam("d"))


# Introspection: either kind of token, no wrapping.
ACCESS_TOKEN = _presented(ACCESS, "token_digest", wrap=False)
REFRESH_TOKEN = _presented(REFRESH, "token_digest", wrap=False)
# The token endpoint: the presented refresh token or code, with the wrapping it opens.
REFRESH_GRANT = _presented(REFRESH, "token_digest", wrap=True)
CODE_GRANT = _presented(CODES, "code_digest", wrap=True)

CLIENT = select(*(CLIENTS.c[name] for name in _CLIENT_COLUMNS)).where(
    CLIENTS.c.client_id == bindparam("client_id")
)


def lock_sqlite(conn: Connection, table: Table, digest_column: str, value: str) -> None:
    """SQLite: take the database's write lock before reading (pysqlite begins the transaction
    at the first write), so that the read sees every commit before ours and none can come
    between it and our writes. The write changes nothing."""
    grant_id = select(table.c.grant_id).where(table.c[digest_column] == value).scalar_subquery()
    conn.execute(update(GRANTS).where(GRANTS.c.id == grant_id).values(status=GRANTS.c.status))


def find_client(conn: Connection, client_id: str) -> ClientView | None:
    row = conn.execute(CLIENT, {"client_id": client_id}).first()
    return ClientView.from_row(row) if row is not None else None


async def find_client_hot(conn: HotConnection, client_id: str) -> ClientView | None:
    row = await conn.first(CLIENT, {"client_id": client_id})
    return ClientView.from_row(row) if row is not None else None
