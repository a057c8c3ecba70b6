"""Token revocation (RFC 7009): a refresh token takes the access tokens issued with it."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint

from livegate import audit
from livegate.db.models import RefreshToken
from livegate.oauth import tokens
from livegate.oauth.adapters import Client, Token
from livegate.oauth.endpoints import PresentedToken
from livegate.oauth.requests import LivegateRequest


class Revocation(PresentedToken, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_token(self, request: LivegateRequest, client: Client) -> Token | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            # RFC 7009 §2.1: the client is told; the token stays as it was.
            raise InvalidGrantError(
                "The token was issued to another client, which alone may revoke it."
            )
        return token

    def revoke_token(self, token: Token, request: LivegateRequest) -> None:
        db = self.server.db
        if isinstance(token.row, RefreshToken):
            tokens.revoke_refresh_token(db, token.row)
        else:
            tokens.revoke_access_token(db, token.row)
        audit.record(
            db,
            "token.revoked",
            client_pk=token.row.client_pk,
            grant_id=token.row.grant_id,
            token_kind=token.kind,
        )
