"""Authorizations: the authorization request checked, then, once the user has signed in, the
grant recorded with its TikTok session and the code issued; or the refusal sent back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import select
from sqlalchemy.orm import Session

from livegate import audit
from livegate.db.models import Grant, OAuthClient, TikTokAccount, utcnow
from livegate.oauth import scopes
from livegate.oauth.requests import LivegateRequest
from livegate.oauth.service.base import ServiceBase
from livegate.tiktok.cookies import session_expiry
from livegate.tiktok.passport import TikTokProfile

T = TypeVar("T")


@dataclass
class ConsentRequest:
    """A valid authorization request, for the consent page."""

    client: OAuthClient
    scopes: list[str]
    params: dict[str, Any]


class AuthorizationService(ServiceBase):
    def check(self, uri: str, params: list[tuple[str, str]]) -> ConsentRequest | str:
        """The request to ask the user about, or the client's redirect URI carrying the error
        (RFC 6749 §4.1.2.1, with RFC 9207's `iss`).

        Raises LivegateError for an error shown to the user instead: an unknown client, a
        redirect URI not registered, a parameter given twice or unreadable (which
        redirect_uri and state the client meant is then anyone's guess). `uri`: the request's
        URL or path; only its path and query are used.
        """
        return self.transaction(lambda db: self.check_in(db, uri, params))

    def check_then(
        self, uri: str, params: list[tuple[str, str]], then: Callable[[Session, ConsentRequest], T]
    ) -> tuple[ConsentRequest, T] | str:
        """`check`, and for a request to ask the user about, `then` in the same transaction
        (the consent page creates its sign-in)."""

        def run(db: Session) -> tuple[ConsentRequest, T] | str:
            checked = self.check_in(db, uri, params)
            return checked if isinstance(checked, str) else (checked, then(db, checked))

        return self.transaction(run)

    def check_in(
        self, db: Session, uri: str, params: list[tuple[str, str]]
    ) -> ConsentRequest | str:
        """`check` in the caller's transaction (the consent page creates its sign-in in the
        same one). A refusal is raised as OAuth2Error or LivegateError."""
        request = self.request("GET", uri, {}, params)
        try:
            grant = self.server(db).get_consent_grant(request)
        except OAuth2Error as error:
            if error.redirect_uri is None:
                raise
            return self.error_redirect(error)
        checked = dict(request.payload.data)
        checked["redirect_uri"] = grant.redirect_uri
        checked["scope"] = request.scope
        return ConsentRequest(grant.client.row, (request.scope or "").split(), checked)

    def error_redirect(self, error: OAuth2Error) -> str:
        _, _, headers = error()
        return self.with_issuer(dict(headers)["Location"])

    def with_issuer(self, location: str) -> str:
        """RFC 9207 §2: every authorization response, errors included, names the issuer."""
        return add_params_to_uri(location, {"iss": self.settings.issuer})

    def complete(
        self,
        db: Session,
        params: dict[str, Any],
        profile: TikTokProfile,
        jar: dict[str, str],
        code: str,
    ) -> str:
        """Record the grant, store the session and issue `code`: the redirect URL.

        The caller supplies the code (derived from the sign-in's binding secret) so that it
        can rebuild this redirect later without having stored the code anywhere. It runs in
        the caller's transaction: the sign-in is marked done in the same commit.
        """
        server = self.server(db)
        found = server.query_client(params["client_id"])
        if found is None or not isinstance(found.row, OAuthClient):
            raise LookupError("client vanished")
        client = found.row
        account = upsert_account(db, profile)
        grant_row = Grant(
            client_pk=client.id,
            account_id=account.id,
            scopes=scopes.parse(params.get("scope")),
            expires_at=utcnow() + dt.timedelta(seconds=self.settings.refresh_token_ttl),
        )
        db.add(grant_row)
        db.flush()
        srow, data_key = self.vault.store_session(db, grant_row.id, jar, session_expiry(jar))
        request = LivegateRequest(
            "GET", self.settings.issuer + "/tiktok/oauth/authorize", {}, list(params.items())
        )
        request.data_key = data_key
        request.session_id = srow.id
        grant = server.get_consent_grant(request)
        grant.issued_code = code
        answer = server.create_authorization_response(request, grant_user=grant_row, grant=grant)
        audit.record(
            db,
            "authorization.completed",
            client_pk=client.id,
            grant_id=grant_row.id,
            account_id=account.id,
        )
        if answer.location is None:
            raise RuntimeError("authorization response without a redirect")
        return self.with_issuer(answer.location)

    def deny_redirect(
        self, params: dict[str, Any], error: str = "access_denied", description: str | None = None
    ) -> str:
        query: dict[str, str] = {"error": error}
        if description:
            query["error_description"] = description
        if params.get("state"):
            query["state"] = params["state"]
        return self.with_issuer(add_params_to_uri(params["redirect_uri"], query))


def upsert_account(db: Session, profile: TikTokProfile) -> TikTokAccount:
    account = db.scalar(select(TikTokAccount).where(TikTokAccount.uid == profile.uid))
    if account is None:
        account = TikTokAccount(uid=profile.uid)
        db.add(account)
    account.sec_uid = profile.sec_uid
    account.unique_id = profile.unique_id
    account.nickname = profile.nickname
    account.region = profile.region
    account.avatar_url = profile.avatar_url
    account.room_id = profile.room_id
    account.has_live_permission = profile.has_live_permission
    account.is_private_account = profile.is_private_account
    db.flush()
    return account
