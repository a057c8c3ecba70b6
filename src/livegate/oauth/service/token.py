"""Tokens: the token, revocation, introspection and validate-refresh endpoints, and the
resource side's check of an access token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from livegate.db.models import Grant, TikTokAccount, utcnow
from livegate.errors import bad_request
from livegate.oauth import tokens
from livegate.oauth.bearer import invalid_token
from livegate.oauth.grants.authorization_code import AUTH_METHODS
from livegate.oauth.requests import LivegateRequest
from livegate.oauth.server import LivegateServer
from livegate.oauth.service.base import EndpointCall, ServiceBase
from livegate.vault import VaultError

Params = list[tuple[str, str]]

# What validate-refresh says of a token that is not live for the asking client: nothing more.
NOT_VALID: dict[str, Any] = {
    "valid": False,
    "scopes": [],
    "tiktok_user_id": None,
    "country_code": None,
}


@dataclass
class Caller:
    """The app and user behind a valid access token."""

    token_id: int
    grant_id: int
    client_pk: int
    client_id: str
    account: TikTokAccount
    scopes: list[str]
    expires_at: dt.datetime


class TokenService(ServiceBase):
    # -- the token endpoints ----------------------------------------------------------------

    def token(self, target: str, headers: dict[str, str], params: Params) -> dict[str, Any]:
        return self.endpoint(target, headers, params, _token)

    def revoke(self, target: str, headers: dict[str, str], params: Params) -> dict[str, Any]:
        return self.endpoint(target, headers, params, _endpoint("revocation"))

    def introspect(self, target: str, headers: dict[str, str], params: Params) -> dict[str, Any]:
        return self.endpoint(target, headers, params, _endpoint("introspection"))

    def validate_refresh(
        self, target: str, headers: dict[str, str], params: Params
    ) -> dict[str, Any]:
        """Whether a refresh token is live, for the client it was issued to (not consumed).

        The client authenticates as at the token endpoint (a public one by its client_id):
        it learns the user's TikTok id, which a leaked refresh token and the public client
        id of a confidential client must not reveal.
        """
        return self.endpoint(target, headers, params, _validate_refresh)

    # -- the resource side ------------------------------------------------------------------

    def authenticate(
        self, access_token: str, with_session: bool = False
    ) -> tuple[Caller, dict[str, str] | None]:
        """The caller behind an access token, and (when asked) its TikTok cookie jar; a
        refused token raises LivegateError (401 invalid_token, RFC 6750 §3.1)."""

        def run(db: Session) -> tuple[Caller, dict[str, str] | None]:
            row = tokens.find_access_token(db, access_token)
            if row is None:
                raise invalid_token("The access token is unknown.")
            grant_row = row.grant
            # First: every token of the grant, even one already rotated out, tells the app
            # what to do next (send the user through the QR flow again).
            if grant_row.status == "login_required":
                raise invalid_token("login_required")
            if row.revoked_at is not None:
                raise invalid_token("The access token was revoked.")
            if row.expires_at <= utcnow():
                raise invalid_token("The access token expired.")
            if grant_row.status != "active":
                raise invalid_token("The authorization was revoked.")
            jar = None
            if with_session:
                try:
                    jar = self.vault.open(db, access_token)
                except VaultError:
                    raise invalid_token("login_required") from None
            caller = Caller(
                token_id=row.id,
                grant_id=grant_row.id,
                client_pk=grant_row.client_pk,
                client_id=grant_row.client.client_id,
                account=grant_row.account,
                scopes=row.scope.split(),
                expires_at=row.expires_at,
            )
            return caller, jar

        return self.transaction(run)

    def mark_login_required(self, grant_id: int) -> None:
        """TikTok ended the user's session: every token of the grant dies."""

        def run(db: Session) -> None:
            grant_row = db.get(Grant, grant_id)
            if grant_row is not None and grant_row.status == "active":
                tokens.end_grant(db, grant_row, status="login_required")

        self.transaction(run)


def _token(server: LivegateServer, request: LivegateRequest) -> dict[str, Any]:
    body: dict[str, Any] = server.create_token_response(request).body
    return body


def _endpoint(name: str) -> EndpointCall:
    def call(server: LivegateServer, request: LivegateRequest) -> dict[str, Any]:
        body: dict[str, Any] = server.create_endpoint_response(name, request).body
        return body

    return call


def _validate_refresh(server: LivegateServer, request: LivegateRequest) -> dict[str, Any]:
    client = server.authenticate_client(request, AUTH_METHODS, "validate_refresh")
    value = request.form.get("refresh_token")
    if not value:
        raise bad_request("Missing 'refresh_token': send the refresh token to check.")
    row = tokens.find_refresh_token(server.db, value)
    if (
        row is None
        or row.client_pk != client.pk
        or row.revoked_at is not None
        or row.rotated_at is not None
        or row.expires_at <= utcnow()
        or row.grant.status != "active"
    ):
        return dict(NOT_VALID)
    return {
        "valid": True,
        "scopes": row.scope.split(),
        "tiktok_user_id": row.grant.account.uid,
        "country_code": row.grant.account.region or None,
        "expires_in": int((row.expires_at - utcnow()).total_seconds()),
    }
