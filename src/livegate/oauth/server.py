"""Authlib's authorization server, wired to our tables, vault and token formats."""

from __future__ import annotations

import base64
import datetime as dt
import secrets as pysecrets
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from sqlalchemy import select, update

from livegate import audit
from livegate.config import Settings
from livegate.db.models import (
    AccessToken,
    AuthorizationCode,
    Grant,
    RefreshToken,
    utcnow,
)
from livegate.oauth import clients, scopes, tokens
from livegate.oauth.adapters import Client, Code, Token
from livegate.oauth.context import db
from livegate.oauth.requests import LivegateRequest
from livegate.secrets import (
    ACCESS_TOKEN_PREFIX,
    CODE_PREFIX,
    REFRESH_TOKEN_PREFIX,
    digest,
    new_secret,
)
from livegate.vault import Vault, VaultError


@dataclass
class OAuthResult:
    """What an Authlib endpoint answered; routes turn it into an HTTP response."""

    status: int
    body: dict[str, Any] | str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"]
        self.headers.append(("Location", value))

    @property
    def is_error(self) -> bool:
        return isinstance(self.body, dict) and "error" in self.body


class S256Only(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1: `plain` is refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            # RFC 7636 would default to plain, which we never accept.
            raise InvalidRequestError("'code_challenge_method' must be 'S256'.")
        client = grant.request.client
        if not data.get("code_challenge") and isinstance(client, Client) and client.row.is_public:
            # RFC 9700 §2.1.1: public clients must use PKCE; refuse before the user signs in.
            raise InvalidRequestError("Public clients must send a PKCE 'code_challenge' (S256).")
        super().validate_code_challenge(grant, redirect_uri)


class Issuer(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def _issued_to(row: RefreshToken, client: Any) -> bool:
    return isinstance(client, Client) and row.client_pk == client.pk


def _server(grant: Any) -> LivegateServer:
    server: LivegateServer = grant.server
    return server


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    # Set for one response by `OAuthService.complete_authorization`: the sign-in derives the
    # code from its browser's binding secret, so the pending sign-in never stores it.
    issued_code: str | None = None

    def generate_authorization_code(self) -> str:
        return self.issued_code or new_secret(CODE_PREFIX)

    def save_authorization_code(self, code: str, request: LivegateRequest) -> None:
        server = _server(self)
        grant_row: Grant = request.user
        data = request.payload.data
        row = AuthorizationCode(
            code_digest=digest(code),
            client_pk=grant_row.client_pk,
            grant_id=grant_row.id,
            redirect_uri=data.get("redirect_uri") or self.redirect_uri or "",
            scope=request.scope or "",
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=utcnow() + dt.timedelta(seconds=server.settings.code_ttl),
        )
        session = db()
        session.add(row)
        session.flush()
        if request.data_key is not None and request.session_id is not None:
            server.vault.wrap(
                session, request.session_id, request.data_key, code, "code", row.expires_at
            )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        session = db()
        row = session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_digest == digest(code))
        )
        if row is None or row.client_pk != client.pk:
            return None  # another app's attempt changes nothing
        # Decide under the grant's lock: a concurrent exchange of the same code has either
        # committed its tokens (and we revoke them below) or not begun.
        tokens.lock_grant(session, row.grant_id)
        session.refresh(row)
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a code used twice, later or by the loser of a race, revokes
            # what it issued.
            if row.family_id:
                tokens.revoke_family(session, row.family_id)
            audit.record(session, "code.reused", client_pk=row.client_pk, grant_id=row.grant_id)
            return None
        if row.expires_at <= utcnow():
            return None
        claimed = session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=utcnow(), family_id=pysecrets.token_hex(16))
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        session.refresh(row)
        self.request.presented_secret = code
        return Code(row)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        # The row stays (marked used) so a replay can be detected; only the wrapping goes.
        Vault.destroy_wraps(db(), [authorization_code.row.code_digest])

    def authenticate_user(self, authorization_code: Code) -> Grant | None:
        grant_row = db().get(Grant, authorization_code.row.grant_id)
        if grant_row is None or grant_row.status != "active":
            return None
        return grant_row


# One description for every refused refresh token: it must not tell another app whether the
# token exists.
REFRESH_REFUSED = "The refresh token is invalid, expired, revoked, or issued to another client."


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token:
        session = db()
        row = tokens.find_refresh_token(session, refresh_token)
        # Authlib has authenticated the client by now but matches it to the token only after
        # this returns: match it first, so that another app's attempt changes nothing.
        if row is None or not _issued_to(row, self.request.client) or row.expires_at <= utcnow():
            raise InvalidGrantError(REFRESH_REFUSED)
        # Decide under the grant's lock: a concurrent refresh with the same token has either
        # committed its new pair (and we revoke it below) or not begun.
        tokens.lock_grant(session, row.grant_id)
        session.refresh(row)
        if row.revoked_at is not None:
            raise InvalidGrantError(REFRESH_REFUSED)
        if row.rotated_at is not None:
            # RFC 9700 §4.14.2: a rotated token came back, later or as the loser of a race,
            # so the family is compromised.
            tokens.revoke_family(session, row.family_id)
            audit.record(session, "refresh.reused", client_pk=row.client_pk, grant_id=row.grant_id)
            raise InvalidGrantError(REFRESH_REFUSED)
        if row.grant.status == "login_required":
            raise InvalidGrantError(description="login_required")
        if row.grant.status != "active":
            raise InvalidGrantError(REFRESH_REFUSED)
        self.request.presented_secret = refresh_token
        return Token(row, refresh_token)

    def save_token(self, token: dict[str, Any]) -> None:
        # The presented token is rotated only now, when nothing can refuse the request any
        # more (a scope it does not cover, say): a refused refresh leaves it as it was.
        if not tokens.claim_refresh_token(db(), self.request.refresh_token.row):
            raise InvalidGrantError(REFRESH_REFUSED)
        super().save_token(token)

    def authenticate_user(self, refresh_token: Token) -> Grant | None:
        grant_row: Grant = refresh_token.row.grant
        return grant_row if grant_row.status == "active" else None

    def revoke_old_credential(self, refresh_token: Token) -> None:
        Vault.destroy_wraps(db(), [refresh_token.row.token_digest])


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def check_params(self, request: LivegateRequest, client: Client) -> None:
        # RFC 7009 §2.1: an invalid token_type_hint is ignored, not an error.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token: Token, request: LivegateRequest) -> None:
        session = db()
        if isinstance(token.row, RefreshToken):
            tokens.revoke_refresh_token(session, token.row)
        else:
            tokens.revoke_access_token(session, token.row)
        audit.record(
            session,
            "token.revoked",
            client_pk=token.row.client_pk,
            grant_id=token.row.grant_id,
            token_kind=token.kind,
        )


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request: LivegateRequest, client: Client) -> None:
        # RFC 7662 §2.1: an unknown hint only widens the search.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token: Token, client: Client, request: LivegateRequest) -> bool:
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
            "iss": self.server.settings.issuer,  # type: ignore[attr-defined]
        }


def _query_token(token_string: str, hint: str | None) -> Token | None:
    session = db()
    finders = [tokens.find_access_token, tokens.find_refresh_token]
    if hint == "refresh_token":
        finders.reverse()
    for find in finders:
        row = find(session, token_string)
        if row is not None:
            return Token(row, token_string)
    return None


class LivegateServer(AuthorizationServer):
    def __init__(self, settings: Settings, vault: Vault) -> None:
        super().__init__(scopes_supported=scopes.ALL_SCOPES)
        self.settings = settings
        self.vault = vault
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: new_secret(ACCESS_TOKEN_PREFIX),
                refresh_token_generator=lambda **_: new_secret(REFRESH_TOKEN_PREFIX),
                expires_generator=lambda client, grant_type: settings.access_token_ttl,
            ),
        )
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_extension(Issuer(settings.issuer))

    # -- Authlib hooks ----------------------------------------------------------------------

    def authenticate_client(
        self, request: LivegateRequest, methods: list[str], endpoint: str = "token"
    ) -> Client:
        if not basic_credentials_readable(request.headers.get("Authorization")):
            # Authlib would fail reading them (a 500); they cannot name any client.
            raise InvalidClientError(
                status_code=401,
                description="The Basic credentials are not base64-encoded UTF-8 text.",
            )
        client: Client = super().authenticate_client(request, methods, endpoint)
        return client

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        row = clients.get_client(db(), client_id)
        return Client(row) if row else None

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            scopes.parse(scope)
        except scopes.UnknownScope as exc:
            raise InvalidScopeError(f"Unknown scope '{exc.args[0]}'.") from exc

    def create_oauth2_request(self, request: LivegateRequest) -> LivegateRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResult:
        return OAuthResult(status, body if body != "" else "", list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def save_token(self, token: dict[str, Any], request: LivegateRequest) -> None:
        """Store a freshly issued pair and re-wrap the grant's data key for it."""
        session = db()
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
        session.add(refresh)
        session.flush()
        access = AccessToken(
            token_digest=digest(token["access_token"]),
            grant_id=grant_row.id,
            client_pk=grant_row.client_pk,
            family_id=family_id,
            refresh_token_id=refresh.id,
            scope=scope,
            expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
        )
        session.add(access)
        grant_row.last_used_at = now
        if request.presented_secret:
            try:
                row, data_key = self.vault.unwrap(session, request.presented_secret)
            except VaultError:
                row = None
            if row is not None:
                self.vault.wrap(
                    session, row.id, data_key, token["access_token"], "access", access.expires_at
                )
                self.vault.wrap(
                    session, row.id, data_key, token["refresh_token"], "refresh", refresh_expires
                )
        token["refresh_expires_in"] = max(0, int((refresh_expires - now).total_seconds()))
        audit.record(
            session,
            "token.issued",
            client_pk=grant_row.client_pk,
            grant_id=grant_row.id,
            grant_type=request.payload.grant_type,
        )


def basic_credentials_readable(header: str | None) -> bool:
    """False for an Authorization header that Authlib would fail reading as Basic credentials:
    not base64, not UTF-8 once decoded, or no scheme and value around its space."""
    if not header or " " not in header:
        return True  # Authlib reads no Basic credentials from it
    parts = header.split(None, 1)
    if len(parts) != 2:
        return False
    scheme, value = parts
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(value).decode("utf-8")
    except ValueError:  # bad base64, non-ASCII characters, or bytes that are not UTF-8
        return False
    return True


def oauth_error(error: OAuth2Error) -> OAuthResult:
    status, body, headers = error()
    return OAuthResult(status, dict(body), list(headers))
