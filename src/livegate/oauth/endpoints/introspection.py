"""Token introspection (RFC 7662), for confidential clients and their own tokens only."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from livegate.oauth.adapters import Client, Token
from livegate.oauth.endpoints import PresentedToken
from livegate.oauth.requests import LivegateRequest


class Introspection(PresentedToken, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_permission(self, token: Token, client: Client, request: LivegateRequest) -> bool:
        # Another client's token is {"active": false}: it learns nothing about it.
        return token.check_client(client)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        if not token.is_active():
            return {"active": False}
        row = token.row
        grant_row = row.grant
        return {
            "active": True,
            "client_id": grant_row.client.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": row.scope,
            "sub": grant_row.account.uid,
            "username": grant_row.account.unique_id,
            "exp": int(row.expires_at.timestamp()),
            "iat": int(row.created_at.timestamp()),
            "iss": self.server.settings.issuer,
        }
