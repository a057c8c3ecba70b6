"""OAuth operations for the routes: each runs in one database transaction, no HTTP here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate import audit
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import Grant, OAuthClient, TikTokAccount, utcnow
from livegate.oauth import clients, scopes, tokens
from livegate.oauth.context import current_db
from livegate.oauth.requests import LivegateRequest, repeated_error
from livegate.oauth.server import LivegateServer, OAuthResult, oauth_error
from livegate.tiktok.cookies import session_expiry
from livegate.tiktok.passport import TikTokProfile
from livegate.vault import Vault, VaultError


@dataclass
class AuthorizeCheck:
    """A validated authorization request, or the error to show or redirect with."""

    client: OAuthClient | None = None
    scopes: list[str] | None = None
    params: dict[str, Any] | None = None
    error: OAuthResult | None = None

    @property
    def redirect(self) -> str | None:
        return self.error.location if self.error else None


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


UNPRINTABLE = {
    "error": "invalid_request",
    "error_description": "The request contains characters that are not allowed.",
}


def _unprintable(exc: ValueError) -> bool:
    # Authlib echoes some request values into error descriptions and refuses to build one
    # with characters RFC 6749 §5.2 forbids; that is still just a bad request.
    return "forbidden characters" in str(exc)


# As at introspection, plus public clients (by client_id), which refresh with no secret.
VALIDATE_REFRESH_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class TokenRejected(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class OAuthService:
    def __init__(self, settings: Settings, database: Database, vault: Vault) -> None:
        self.settings = settings
        self.db = database
        self.vault = vault
        self.server = LivegateServer(settings, vault)

    def _run(self, fn: Any, *args: Any) -> Any:
        with self.db.session() as session:
            token = current_db.set(session)
            try:
                return fn(session, *args)
            finally:
                current_db.reset(token)

    def public_uri(self, target: str) -> str:
        """The URI Authlib sees: the issuer, plus the request's path and query.

        Never the Host header or the scheme of the last hop: behind a TLS-terminating proxy
        those say http://<internal name>, and Authlib refuses any http URI that is not
        loopback (InsecureTransportError). The issuer is what clients were told to use.
        """
        parts = urlsplit(target)
        return self.settings.issuer + parts.path + (f"?{parts.query}" if parts.query else "")

    def _request(
        self, method: str, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> LivegateRequest | OAuthResult:
        """The request for Authlib, or the answer when its parameters are refused outright."""
        try:
            request = LivegateRequest(method, self.public_uri(target), headers, params)
        except InsecureTransportError as error:  # LIVEGATE_PUBLIC_URL is plain http
            return oauth_error(error)
        if request.has_nul():
            return OAuthResult(400, dict(UNPRINTABLE))
        name = request.repeated()
        if name is not None:
            return OAuthResult(400, repeated_error(name))
        return request

    def _endpoint(
        self,
        target: str,
        headers: dict[str, str],
        params: list[tuple[str, str]],
        call: Callable[[LivegateRequest], OAuthResult],
    ) -> OAuthResult:
        request = self._request("POST", target, headers, params)
        if isinstance(request, OAuthResult):
            return request
        try:
            result: OAuthResult = self._run(lambda _s: call(request))
        except ValueError as exc:
            if not _unprintable(exc):
                raise
            return OAuthResult(400, dict(UNPRINTABLE))
        return result

    # -- authorization endpoint -------------------------------------------------------------

    def check_authorization(self, uri: str, params: list[tuple[str, str]]) -> AuthorizeCheck:
        """`uri`: the request's URL or path; only its path and query are used."""
        request = self._request("GET", uri, {}, params)
        if isinstance(request, OAuthResult):
            # Never a redirect: when a parameter is given twice (or cannot be read), which
            # redirect_uri and state the client meant is anyone's guess.
            return AuthorizeCheck(error=request)

        def check(session: Session) -> AuthorizeCheck:
            try:
                grant = self.server.get_consent_grant(request)
                grant.validate_authorization_request()
            except ValueError as exc:
                if not _unprintable(exc):
                    raise
                return AuthorizeCheck(error=OAuthResult(400, dict(UNPRINTABLE)))
            except OAuth2Error as error:
                result = oauth_error(error)
                if error.redirect_uri and result.location:
                    # RFC 9207: error redirects carry iss as well.
                    result.location = add_params_to_uri(
                        result.location, {"iss": self.settings.issuer}
                    )
                return AuthorizeCheck(error=result)
            client_row = grant.client.row
            params_dict = dict(request.payload.data)
            params_dict["redirect_uri"] = grant.redirect_uri
            params_dict["scope"] = request.scope
            return AuthorizeCheck(
                client=client_row, scopes=(request.scope or "").split(), params=params_dict
            )

        result: AuthorizeCheck = self._run(check)
        return result

    def complete_authorization(
        self,
        session: Session,
        params: dict[str, Any],
        profile: TikTokProfile,
        jar: dict[str, str],
        code: str,
    ) -> str:
        """Record the grant, store the session and issue `code`: the redirect URL.

        The caller supplies the code (derived from the sign-in's binding secret) so that it
        can rebuild this redirect later without having stored the code anywhere.
        """
        token = current_db.set(session)
        try:
            client = session.scalar(
                select(OAuthClient).where(OAuthClient.client_id == params["client_id"])
            )
            if client is None:
                raise LookupError("client vanished")
            account = upsert_account(session, profile)
            now = utcnow()
            grant_row = Grant(
                client_pk=client.id,
                account_id=account.id,
                scopes=scopes.parse(params.get("scope")),
                expires_at=now + dt.timedelta(seconds=self.settings.refresh_token_ttl),
            )
            session.add(grant_row)
            session.flush()
            srow, data_key = self.vault.store_session(
                session, grant_row.id, jar, session_expiry(jar)
            )
            request = LivegateRequest(
                "GET", self.settings.issuer + "/tiktok/oauth/authorize", {}, list(params.items())
            )
            request.data_key = data_key
            request.session_id = srow.id
            grant = self.server.get_consent_grant(request)
            grant.issued_code = code
            result: OAuthResult = self.server.create_authorization_response(
                request, grant_user=grant_row, grant=grant
            )
            audit.record(
                session,
                "authorization.completed",
                client_pk=client.id,
                grant_id=grant_row.id,
                account_id=account.id,
            )
            if result.location is None:
                raise RuntimeError("authorization response without a redirect")
            return result.location
        finally:
            current_db.reset(token)

    def deny_redirect(
        self, params: dict[str, Any], error: str = "access_denied", description: str | None = None
    ) -> str:
        query: dict[str, str] = {"error": error}
        if description:
            query["error_description"] = description
        if params.get("state"):
            query["state"] = params["state"]
        query["iss"] = self.settings.issuer
        return add_params_to_uri(params["redirect_uri"], query)

    # -- token, revocation, introspection ---------------------------------------------------

    def token(
        self, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> OAuthResult:
        return self._endpoint(target, headers, params, self.server.create_token_response)

    def revoke(
        self, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> OAuthResult:
        return self._endpoint(
            target,
            headers,
            params,
            lambda request: self.server.create_endpoint_response("revocation", request),
        )

    def introspect(
        self, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> OAuthResult:
        return self._endpoint(
            target,
            headers,
            params,
            lambda request: self.server.create_endpoint_response("introspection", request),
        )

    def validate_refresh(
        self, target: str, headers: dict[str, str], params: list[tuple[str, str]]
    ) -> OAuthResult:
        """Whether a refresh token is live, for the client it was issued to (not consumed).

        The client authenticates as at introspection: it learns the user's TikTok id, which
        a leaked refresh token and the public client id alone must not reveal.
        """
        return self._endpoint(target, headers, params, self._validate_refresh)

    def _validate_refresh(self, request: LivegateRequest) -> OAuthResult:
        try:
            client = self.server.authenticate_client(
                request, VALIDATE_REFRESH_AUTH_METHODS, "validate_refresh"
            )
        except OAuth2Error as error:
            return oauth_error(error)
        value = request.form.get("refresh_token")
        if not value:
            return OAuthResult(
                400, {"error": "invalid_request", "error_description": "Missing 'refresh_token'."}
            )
        row = tokens.find_refresh_token(current_db.get(), value)
        if (
            row is None
            or row.client_pk != client.pk
            or row.revoked_at is not None
            or row.rotated_at is not None
            or row.expires_at <= utcnow()
            or row.grant.status != "active"
        ):
            return OAuthResult(
                200, {"valid": False, "scopes": [], "tiktok_user_id": None, "country_code": None}
            )
        return OAuthResult(
            200,
            {
                "valid": True,
                "scopes": row.scope.split(),
                "tiktok_user_id": row.grant.account.uid,
                "country_code": row.grant.account.region or None,
                "expires_in": int((row.expires_at - utcnow()).total_seconds()),
            },
        )

    # -- resource side ----------------------------------------------------------------------

    def authenticate(
        self, access_token: str, with_session: bool = False
    ) -> tuple[Caller, dict[str, str] | None]:
        """The caller behind an access token, and (when asked) its TikTok cookie jar."""

        def run(session: Session) -> tuple[Caller, dict[str, str] | None]:
            row = tokens.find_access_token(session, access_token)
            if row is None:
                raise TokenRejected("invalid_token", "The access token is unknown.")
            grant_row = row.grant
            # First: every token of the grant, even one already rotated out, tells the app
            # what to do next (send the user through the QR flow again).
            if grant_row.status == "login_required":
                raise TokenRejected("invalid_token", "login_required")
            if row.revoked_at is not None:
                raise TokenRejected("invalid_token", "The access token was revoked.")
            if row.expires_at <= utcnow():
                raise TokenRejected("invalid_token", "The access token expired.")
            if grant_row.status != "active":
                raise TokenRejected("invalid_token", "The authorization was revoked.")
            jar = None
            if with_session:
                try:
                    jar = self.vault.open(session, access_token)
                except VaultError as exc:
                    raise TokenRejected("invalid_token", "login_required") from exc
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

        result: tuple[Caller, dict[str, str] | None] = self._run(run)
        return result

    def mark_login_required(self, grant_id: int) -> None:
        def run(session: Session) -> None:
            grant_row = session.get(Grant, grant_id)
            if grant_row is not None and grant_row.status == "active":
                tokens.end_grant(session, grant_row, status="login_required")

        self._run(run)

    # -- clients ----------------------------------------------------------------------------

    def client_public_info(self, client_id: str) -> dict[str, Any] | None:
        def run(session: Session) -> dict[str, Any] | None:
            row = clients.get_client(session, client_id)
            return clients.public_info(row) if row else None

        result: dict[str, Any] | None = self._run(run)
        return result

    def metadata(self) -> dict[str, Any]:
        base = self.settings.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/tiktok/oauth/authorize",
            "token_endpoint": f"{base}/tiktok/oauth/token",
            "revocation_endpoint": f"{base}/tiktok/oauth/revoke",
            "introspection_endpoint": f"{base}/tiktok/oauth/introspect",
            "userinfo_endpoint": f"{base}/tiktok/oauth/userinfo",
            "scopes_supported": scopes.ALL_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "service_documentation": f"{base}/",
        }


def upsert_account(session: Session, profile: TikTokProfile) -> TikTokAccount:
    account = session.scalar(select(TikTokAccount).where(TikTokAccount.uid == profile.uid))
    if account is None:
        account = TikTokAccount(uid=profile.uid)
        session.add(account)
    account.sec_uid = profile.sec_uid
    account.unique_id = profile.unique_id
    account.nickname = profile.nickname
    account.region = profile.region
    account.avatar_url = profile.avatar_url
    account.room_id = profile.room_id
    account.has_live_permission = profile.has_live_permission
    account.is_private_account = profile.is_private_account
    session.flush()
    return account
