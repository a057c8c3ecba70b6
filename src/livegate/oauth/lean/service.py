"""Which token and introspection requests the lean path answers, and the ORM path for the
rest (`TokenService`, in the threadpool): refusals, replays, lost races, other grant types.

A lean request costs, on PostgreSQL: introspection one autocommitted read (two when the
client is not the token's); a refresh or a code exchange BEGIN, the locked read, the write,
COMMIT. Its statements await psycopg's async driver on the event loop (`Database.hot`).
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import Connection

from livegate.errors import LivegateError
from livegate.oauth.lean import reads
from livegate.oauth.lean.server import Fallback, LeanServer
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

        def run(conn: Connection) -> dict[str, Any]:
            if conn.dialect.name == "sqlite":
                reads.lock_sqlite(conn, table, column, value)
            row = conn.execute(read, {"d": digest(value)}).first()
            return self._answer(conn, request, row, "token")

        try:
            return await self.database.hot(run, write=True)
        except Fallback:
            return await to_thread.run_sync(self.tokens.token, target, headers, params)

    async def introspect(
        self, target: str, headers: dict[str, str], params: Params
    ) -> dict[str, Any]:
        request = self.tokens.request("POST", target, headers, params)
        given = request.form.get("token")
        value = given if isinstance(given, str) else ""
        if value.startswith(ACCESS_TOKEN_PREFIX):
            read, kind = reads.ACCESS_TOKEN, "access_token"
        elif value.startswith(REFRESH_TOKEN_PREFIX):
            read, kind = reads.REFRESH_TOKEN, "refresh_token"
        else:
            read, kind = None, ""

        def run(conn: Connection) -> dict[str, Any]:
            row = conn.execute(read, {"d": digest(value)}).first() if read is not None else None
            return self._answer(conn, request, row, "introspection", kind)

        try:
            return await self.database.hot(run, write=False)
        except Fallback:
            return await to_thread.run_sync(self.tokens.introspect, target, headers, params)

    def _answer(
        self,
        conn: Connection,
        request: LivegateRequest,
        row: Any,
        endpoint: str,
        kind: str = "",
    ) -> dict[str, Any]:
        server = LeanServer(self.tokens.settings, self.tokens.vault, conn, row, kind)
        try:
            if endpoint == "token":
                answer = server.create_token_response(request)
            else:
                answer = server.create_endpoint_response("introspection", request)
        except (OAuth2Error, LivegateError, ValueError):
            raise Fallback from None
        body: dict[str, Any] = answer.body
        return body
