"""Authlib's server on the lean path's rows: the presented code or token is read once, with
its grant, client, account and wrapping, before Authlib runs; Authlib validates the
request on it, and the answer is written in one statement (`issue.py`).

The server itself does no I/O, so that the caller can await its statements on PostgreSQL and
run them in a thread on SQLite: a client other than the presented token's is asked for
(`NeedClient`), and the write is returned as a plan (`LeanServer.plan`) for the caller to make.

It answers only what it can answer alone: a success, or introspection's `{"active": false}`.
Anything else (a refusal, a replayed refresh token or code, a claim lost to a concurrent
request) raises `Fallback` having changed nothing, and the ORM path (`oauth/server.py`)
decides it again under the grant's lock, with every word and revocation it has always had.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, TokenMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from sqlalchemy.orm import Session

from livegate.config import Settings
from livegate.db.models import utcnow
from livegate.oauth.adapters import Client
from livegate.oauth.client_auth import basic_credentials_readable
from livegate.oauth.endpoints.introspection import Introspection
from livegate.oauth.grants import AuthorizationCodeGrant, RefreshTokenGrant
from livegate.oauth.lean import reads
from livegate.oauth.lean.issue import Issue
from livegate.oauth.requests import LivegateRequest
from livegate.oauth.server import LivegateServer
from livegate.secrets import digest
from livegate.vault import Vault, VaultError


class Fallback(Exception):
    """The lean path does not answer this request alone: the ORM path will."""


class NeedClient(Exception):
    """Client authentication names a client that was not read with the presented token: the
    caller reads it and asks the server again (nothing was done meanwhile)."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self.client_id = client_id


class LeanToken(TokenMixin):
    """An access or refresh token from `reads`' row (columns t_*, grant_status, c_*...)."""

    def __init__(self, row: Any, kind: str) -> None:
        self.row = row
        self.kind = kind

    def check_client(self, client: Any) -> bool:
        return isinstance(client, Client) and client.pk == self.row.t_client_pk

    def get_scope(self) -> str:
        scope: str = self.row.t_scope
        return scope

    def get_expires_in(self) -> int:
        return max(0, int((self.row.t_expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return bool(self.row.t_expires_at <= utcnow())

    def is_revoked(self) -> bool:
        row = self.row
        rotated = self.kind == "refresh_token" and row.t_rotated_at is not None
        return row.t_revoked_at is not None or rotated or row.grant_status != "active"

    def is_active(self) -> bool:
        return not self.is_expired() and not self.is_revoked()


class LeanCode(AuthorizationCodeMixin):
    def __init__(self, row: Any) -> None:
        self.row = row

    def get_redirect_uri(self) -> str:
        uri: str = self.row.t_redirect_uri
        return uri

    def get_scope(self) -> str:
        scope: str = self.row.t_scope
        return scope

    @property
    def code_challenge(self) -> str | None:
        challenge: str | None = self.row.t_code_challenge
        return challenge

    @property
    def code_challenge_method(self) -> str | None:
        method: str | None = self.row.t_code_challenge_method
        return method


class LeanIntrospection(Introspection):
    server: LeanServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        row = self.server.presented
        if row is None or row.t_token_digest != digest(token_string):
            return None
        return LeanToken(row, self.server.presented_kind)

    def introspect_token(self, token: Any) -> dict[str, Any]:
        row = token.row
        return {
            "active": True,
            "client_id": row.c_client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": row.t_scope,
            "sub": row.account_uid,
            "username": row.account_name,
            "exp": int(row.t_expires_at.timestamp()),
            "iat": int(row.t_created_at.timestamp()),
            "iss": self.server.settings.issuer,
        }


class LeanRefreshGrant(RefreshTokenGrant):
    server: LeanServer

    def authenticate_refresh_token(self, refresh_token: str) -> LeanToken:
        row = self.server.presented
        token = LeanToken(row, "refresh_token") if row is not None else None
        # Live and the authenticated client's, or the ORM path decides (and words) it; a
        # rotated token presented again revokes its family there.
        if token is None or not token.check_client(self.request.client) or not token.is_active():
            raise Fallback
        self.request.presented_secret = refresh_token
        return token

    def authenticate_user(self, refresh_token: Any) -> Any:
        return refresh_token.row

    def save_token(self, token: dict[str, Any]) -> None:
        self.server.save_token(token, self.request)

    def revoke_old_credential(self, refresh_token: Any) -> None:
        return None  # the write deleted its wrapping


class LeanCodeGrant(AuthorizationCodeGrant):
    server: LeanServer

    def query_authorization_code(self, code: str, client: Client) -> LeanCode:
        row = self.server.presented
        if (
            row is None
            or row.t_client_pk != client.pk
            or row.t_used_at is not None
            or row.t_expires_at <= utcnow()
            or row.grant_status != "active"
            or (row.t_redirect_uri and self.request.payload.redirect_uri != row.t_redirect_uri)
        ):
            raise Fallback
        self.request.presented_secret = code
        return LeanCode(row)

    def authenticate_user(self, authorization_code: Any) -> Any:
        return authorization_code.row

    def delete_authorization_code(self, authorization_code: Any) -> None:
        return None  # the write deleted its wrapping


class LeanServer(LivegateServer):
    CODE_GRANT = LeanCodeGrant
    REFRESH_GRANT = LeanRefreshGrant
    INTROSPECTION = LeanIntrospection

    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        presented: Any,
        presented_kind: str,
        clients: dict[str, reads.ClientView | None],
    ) -> None:
        # No hook uses the ORM session: unbound, any use of it would fail.
        super().__init__(settings, vault, Session())
        self.presented = presented
        self.presented_kind = presented_kind
        self.clients = clients  # read so far, by client_id (None: there is no such client)
        self.plan: Issue | None = None

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        row = self.presented
        # Usually the presented token's own client: read with it, no second statement.
        if row is not None and row.c_client_id == client_id:
            return Client(reads.ClientView.from_row(row, "c_"))
        if "\x00" in client_id:  # no client has one, and PostgreSQL text refuses it
            return None
        if client_id not in self.clients:
            raise NeedClient(client_id)
        view = self.clients[client_id]
        return Client(view) if view else None

    def authenticate_client(
        self, request: LivegateRequest, methods: list[str], endpoint: str = "token"
    ) -> Client:
        if not basic_credentials_readable(request.headers.get("Authorization")):
            raise Fallback
        try:
            client: Client = AuthorizationServer.authenticate_client(
                self, request, methods, endpoint
            )
        except InvalidClientError:
            raise Fallback from None  # the ORM path says why
        return client

    def save_token(self, token: dict[str, Any], request: LivegateRequest) -> None:
        row = self.presented
        if row is None:
            raise Fallback
        now = utcnow()
        grant_type = request.payload.grant_type
        if grant_type == "refresh_token":
            claim, family_id = ("refresh", row.t_id), row.t_family_id
            refresh_expires = row.t_expires_at
        else:
            claim, family_id = ("code", row.t_id), pysecrets.token_hex(16)
            refresh_expires = row.grant_expires
        access_expires = now + dt.timedelta(seconds=int(token["expires_in"]))
        plan = Issue(
            claim=claim,
            now=now,
            grant_id=row.t_grant_id,
            client_pk=row.t_client_pk,
            family_id=family_id,
            scope=token.get("scope", ""),
            refresh_digest=digest(token["refresh_token"]),
            refresh_expires=refresh_expires,
            access_digest=digest(token["access_token"]),
            access_expires=access_expires,
            grant_type=grant_type,
            spent_digest=digest(request.presented_secret or ""),
        )
        presented = request.presented_secret
        plan.wraps = self._wrappings(presented, token, access_expires, refresh_expires)
        self.plan = plan
        token["refresh_expires_in"] = max(0, int((refresh_expires - now).total_seconds()))

    def _wrappings(
        self,
        presented: str | None,
        token: dict[str, Any],
        access_expires: dt.datetime,
        refresh_expires: dt.datetime,
    ) -> list[dict[str, Any]]:
        """The data key the presented code or refresh token opens, wrapped for the new pair;
        none for a grant whose session is gone (its tokens work without one)."""
        row = self.presented
        if not presented or row is None or row.w_session_id is None:
            return []
        try:
            data_key = self.vault.open_key(
                presented,
                row.w_secret_kind,
                row.w_server_key_id,
                row.w_salt,
                row.w_nonce,
                row.w_wrapped_key,
            )
        except VaultError:
            return []
        return [
            self.vault.wrapping(row.w_session_id, data_key, value, kind, expires)
            for value, kind, expires in (
                (token["access_token"], "access", access_expires),
                (token["refresh_token"], "refresh", refresh_expires),
            )
        ]
