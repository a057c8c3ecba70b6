"""Which token and introspection requests the lean path answers, and the ORM path for the
rest (`TokenService`, in the threadpool): refusals, replays, lost races, other grant types.

A lean request costs, on PostgreSQL: introspection one autocommitted read (two when the
client is not the token's); a refresh or a code exchange the read and the write, each
autocommitted (the write locks the grant and checks again what the read decided on). On
PostgreSQL its statements are awaited on the event loop (psycopg's own async connections,
`db/hot.py`); on SQLite, whose statements are in-process calls, the whole request runs in
the threadpool, in one transaction.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import Select, Table

from livegate.db.hot import HotConnection
from livegate.errors import LivegateError
from livegate.oauth.lean import reads
from livegate.oauth.lean.issue import Issue, issue_postgresql, issue_sqlite
from livegate.oauth.lean.server import Fallback, LeanServer, NeedClient
from livegate.oauth.requests import LivegateRequest
from livegate.oauth.service.token import TokenService
from livegate.secrets import ACCESS_TOKEN_PREFIX, CODE_PREFIX, REFRESH_TOKEN_PREFIX, digest

Params = list[tuple[str, str]]

# grant_type: (the parameter it presents, its prefix, the read, the table, its digest column)
_GRANTS = {
    "refresh_token": (
        "refresh_token",
        REFRESH_TOKEN_PREFIX,
        reads.REFRESH_GRANT,
        reads.REFRESH,
        "token_digest",
    ),
    "authorization_code": ("code", CODE_PREFIX, reads.CODE_GRANT, reads.CODES, "code_digest"),
}


class LeanTokens:
    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens
        self.database = tokens.database

    async def token(self, target: str, headers: dict[str, str], params: Params) -> dict[str, Any]:
        request = self.tokens.request("POST", target, headers, params)
        grant_type = request.payload.grant_type
        entry = _GRANTS.get(grant_type or "")
        value = request.form.get(entry[0]) if entry else None
        if entry is None or not isinstance(value, str) or not value.startswith(entry[1]):
            return await to_thread.run_sync(self.tokens.token, target, headers, params)
        _, _, read, table, column = entry
        lean = _Lean(self.tokens, request, read, value, "token")
        try:
            if self.database.hot is None:
                return await to_thread.run_sync(lean.on_sqlite, (table, column))
            return await self.database.hot.run(lean.on_postgresql)
        except Fallback:
            return await to_thread.run_sync(self.tokens.token, target, headers, params)

    async def introspect(
        self, target: str, headers: dict[str, str], params: Params
    ) -> dict[str, Any]:
        request = self.tokens.request("POST", target, headers, params)
        given = request.form.get("token")
        value = given if isinstance(given, str) else ""
        read: Select[Any] | None
        if value.startswith(ACCESS_TOKEN_PREFIX):
            read, kind = reads.ACCESS_TOKEN, "access_token"
        elif value.startswith(REFRESH_TOKEN_PREFIX):
            read, kind = reads.REFRESH_TOKEN, "refresh_token"
        else:
            read, kind = None, ""
        lean = _Lean(self.tokens, request, read, value, "introspection", kind)
        try:
            if self.database.hot is None:
                return await to_thread.run_sync(lean.on_sqlite, None)
            return await self.database.hot.run(lean.on_postgresql)
        except Fallback:
            return await to_thread.run_sync(self.tokens.introspect, target, headers, params)


class _Lean:
    """One lean request: the presented secret's read, Authlib's answer on it (with any other
    client it names, read when it asks), and the write that answer plans."""

    def __init__(
        self,
        tokens: TokenService,
        request: LivegateRequest,
        read: Select[Any] | None,
        value: str,
        endpoint: str,
        kind: str = "",
    ) -> None:
        self.tokens = tokens
        self.request = request
        self.read = read
        self.value = value
        self.endpoint = endpoint
        self.kind = kind
        self.clients: dict[str, reads.ClientView | None] = {}

    async def on_postgresql(self, conn: HotConnection) -> dict[str, Any]:
        row = None
        if self.read is not None:
            row = await conn.first(self.read, {"d": digest(self.value)})
        while True:
            try:
                body, plan = self.answer(row)
                break
            except NeedClient as need:
                self.clients[need.client_id] = await reads.find_client_hot(conn, need.client_id)
        if plan is not None and not await issue_postgresql(conn, plan):
            raise Fallback  # claimed by a concurrent request: a replay, decided under the lock
        return body

    def on_sqlite(self, lock: tuple[Table, str] | None) -> dict[str, Any]:
        """The same on SQLite, in a worker thread; `lock`: the table and digest column whose
        row's grant the request changes (the token endpoint)."""
        with self.tokens.database.engine.connect() as conn:
            if lock is not None:
                reads.lock_sqlite(conn, *lock, self.value)
            row = None
            if self.read is not None:
                row = conn.execute(self.read, {"d": digest(self.value)}).first()
            while True:
                try:
                    body, plan = self.answer(row)
                    break
                except NeedClient as need:
                    self.clients[need.client_id] = reads.find_client(conn, need.client_id)
            if plan is not None and not issue_sqlite(conn, plan):
                raise Fallback
            conn.commit()
            return body

    def answer(self, row: Any) -> tuple[dict[str, Any], Issue | None]:
        """Authlib's answer on the rows read so far, and the write it needs (None: none)."""
        tokens = self.tokens
        server = LeanServer(tokens.settings, tokens.vault, row, self.kind, self.clients)
        try:
            if self.endpoint == "token":
                answer = server.create_token_response(self.request)
            else:
                answer = server.create_endpoint_response("introspection", self.request)
        except (OAuth2Error, LivegateError, ValueError):
            raise Fallback from None
        body: dict[str, Any] = answer.body
        return body, server.plan
