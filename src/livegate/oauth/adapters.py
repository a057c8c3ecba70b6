"""Authlib's model interfaces over our table rows."""

from __future__ import annotations

import datetime as dt

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

from livegate.db.models import AccessToken, AuthorizationCode, OAuthClient, RefreshToken, utcnow
from livegate.oauth import scopes
from livegate.oauth.lean.reads import ClientView
from livegate.secrets import digest_matches


class Client(ClientMixin):
    """A client's row: the ORM's, or the lean path's read of the same columns."""

    def __init__(self, row: OAuthClient | ClientView) -> None:
        self.row = row

    @property
    def pk(self) -> int:
        return self.row.id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous registration may stand in for a missing redirect_uri.
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The canonical scope string, or None (invalid_scope) when any part is not allowed.
        The grant has already refused such a request in words; this is Authlib's own check."""
        try:
            requested = scopes.parse(scope)
        except scopes.UnknownScope:
            return None
        allowed = set(self.row.scopes)
        if not requested or any(s not in allowed for s in requested):
            return None
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        row = self.row
        if digest_matches(client_secret, row.secret_digest):
            return True
        return (
            row.previous_secret_expires_at is not None
            and row.previous_secret_expires_at > utcnow()
            and digest_matches(client_secret, row.previous_secret_digest)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class Code(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    @property
    def code_challenge(self) -> str | None:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str | None:
        return self.row.code_challenge_method


class Token(TokenMixin):
    """An access or refresh token row, with the plaintext presented (for the vault)."""

    def __init__(self, row: AccessToken | RefreshToken, presented: str) -> None:
        self.row = row
        self.presented = presented

    @property
    def kind(self) -> str:
        return "access_token" if isinstance(self.row, AccessToken) else "refresh_token"

    def check_client(self, client: ClientMixin) -> bool:
        return isinstance(client, Client) and client.pk == self.row.client_pk

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.row.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.row.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        if self.row.revoked_at is not None:
            return True
        if isinstance(self.row, RefreshToken) and self.row.rotated_at is not None:
            return True
        return self.row.grant.status != "active"

    def is_active(self) -> bool:
        return not self.is_expired() and not self.is_revoked()

    @property
    def issued_at(self) -> dt.datetime:
        return self.row.created_at
