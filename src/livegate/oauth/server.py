"""Authlib's AuthorizationServer, wired to livegate: grants, endpoints, token format, issuer.

The OAuth services build one per call, around that call's database session: Authlib hands
its hooks the server (`self.server` in grants and endpoints, `query_client`, `save_token`),
so the session travels with it, explicitly, and no hook needs a global to find it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, NoReturn

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from sqlalchemy.orm import Session

from livegate import audit
from livegate.config import Settings
from livegate.db.models import AccessToken, AuthorizationCode, Grant, RefreshToken, utcnow
from livegate.oauth import clients, scopes
from livegate.oauth.adapters import Client
from livegate.oauth.client_auth import UNREADABLE_BASIC, basic_credentials_readable, why_refused
from livegate.oauth.endpoints.introspection import Introspection
from livegate.oauth.endpoints.revocation import Revocation
from livegate.oauth.grants import AuthorizationCodeGrant, RefreshTokenGrant, S256Only
from livegate.oauth.requests import LivegateRequest, quoted
from livegate.secrets import ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, digest, new_secret
from livegate.vault import Vault, VaultError


class Answer(NamedTuple):
    """What an Authlib endpoint answered when it did not refuse (refusals are raised)."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


class LivegateServer(AuthorizationServer):
    # What it registers; the lean path (oauth/lean/) registers its own subclasses.
    CODE_GRANT: type[AuthorizationCodeGrant] = AuthorizationCodeGrant
    REFRESH_GRANT: type[RefreshTokenGrant] = RefreshTokenGrant
    INTROSPECTION: type[Introspection] = Introspection

    def __init__(self, settings: Settings, vault: Vault, db: Session) -> None:
        super().__init__(scopes_supported=scopes.ALL_SCOPES)
        self.settings = settings
        self.vault = vault
        self.db = db
        self._clients: dict[str, Client | None] = {}
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: new_secret(ACCESS_TOKEN_PREFIX),
                refresh_token_generator=lambda **_: new_secret(REFRESH_TOKEN_PREFIX),
                expires_generator=lambda client, grant_type: settings.access_token_ttl,
            ),
        )
        self.register_grant(self.CODE_GRANT, [S256Only(required=True)])
        self.register_grant(self.REFRESH_GRANT)
        self.register_endpoint(Revocation)
        self.register_endpoint(self.INTROSPECTION)

    # -- Authlib's framework hooks ----------------------------------------------------------

    def create_oauth2_request(self, request: LivegateRequest) -> LivegateRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Answer:
        return Answer(status, body, list(headers))

    def handle_error_response(self, request: LivegateRequest, error: OAuth2Error) -> NoReturn:
        # Raised, not answered: the service commits what the refusal changed (a replay's
        # revocation) and the app's error handler answers in the caller's dialect.
        raise error

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        # Authlib asks more than once per request (consent grant, then the response).
        if client_id not in self._clients:
            row = clients.get_client(self.db, client_id)
            self._clients[client_id] = Client(row) if row else None
        return self._clients[client_id]

    # -- words for what Authlib refuses tersely ---------------------------------------------

    def authenticate_client(
        self, request: LivegateRequest, methods: list[str], endpoint: str = "token"
    ) -> Client:
        if not basic_credentials_readable(request.headers.get("Authorization")):
            # Authlib would fail reading them (a 500); they cannot name any client.
            raise InvalidClientError(status_code=401, description=UNREADABLE_BASIC)
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            reason = why_refused(self.db, request, methods)
            raise InvalidClientError(status_code=exc.status_code, description=reason) from None
        return client

    def get_authorization_grant(self, request: LivegateRequest) -> Any:
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as exc:
            value = request.payload.response_type
            described = (
                f"response_type {quoted(value, 'given')} is not supported"
                if value
                else "Missing 'response_type'"
            )
            raise OAuth2Error(
                f"{described}: livegate issues codes, use response_type=code.",
                error="unsupported_response_type" if value else "invalid_request",
                redirect_uri=exc.redirect_uri,
            ) from None

    def get_token_grant(self, request: LivegateRequest) -> Any:
        value = request.payload.grant_type
        supported = "use 'authorization_code' or 'refresh_token'."
        if not value:
            raise InvalidRequestError(f"Missing 'grant_type': {supported}")
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError:
            raise OAuth2Error(
                f"grant_type {quoted(value, 'given')} is not supported: {supported}",
                error="unsupported_grant_type",
            ) from None

    # -- issuing ----------------------------------------------------------------------------

    def save_token(self, token: dict[str, Any], request: LivegateRequest) -> None:
        """Store a freshly issued pair and re-wrap the grant's data key for it."""
        db = self.db
        grant_row: Grant = request.user
        now = utcnow()
        if request.payload.grant_type == "refresh_token":
            old: RefreshToken = request.refresh_token.row
            family_id, refresh_expires = old.family_id, old.expires_at
        else:
            code_row: AuthorizationCode = request.authorization_code.row
            family_id, refresh_expires = code_row.family_id or "", grant_row.expires_at
        scope = token.get("scope", "")
        refresh = RefreshToken(
            token_digest=digest(token["refresh_token"]),
            grant_id=grant_row.id,
            client_pk=grant_row.client_pk,
            family_id=family_id,
            scope=scope,
            expires_at=refresh_expires,
        )
        db.add(refresh)
        db.flush()
        access = AccessToken(
            token_digest=digest(token["access_token"]),
            grant_id=grant_row.id,
            client_pk=grant_row.client_pk,
            family_id=family_id,
            refresh_token_id=refresh.id,
            scope=scope,
            expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
        )
        db.add(access)
        grant_row.last_used_at = now
        self._rewrap(request.presented_secret, token, access.expires_at, refresh_expires)
        token["refresh_expires_in"] = max(0, int((refresh_expires - now).total_seconds()))
        audit.record(
            db,
            "token.issued",
            client_pk=grant_row.client_pk,
            grant_id=grant_row.id,
            grant_type=request.payload.grant_type,
        )

    def _rewrap(
        self,
        presented: str | None,
        token: dict[str, Any],
        access_expires: dt.datetime,
        refresh_expires: dt.datetime,
    ) -> None:
        """The data key the presented code or refresh token opened, wrapped for the new pair."""
        if not presented:
            return
        try:
            row, data_key = self.vault.unwrap(self.db, presented)
        except VaultError:
            return  # a grant whose session is gone: the tokens work without one
        for value, kind, expires in (
            (token["access_token"], "access", access_expires),
            (token["refresh_token"], "refresh", refresh_expires),
        ):
            self.vault.wrap(self.db, row.id, data_key, value, kind, expires)
