"""The authorization code grant (RFC 6749 §4.1) with PKCE S256 (RFC 7636, RFC 9700 §2.1.1).

The code's row is claimed under the grant's row lock (`tokens.lock_grant`), after it is
matched to the authenticated client: another app presenting the code changes nothing, and a
code used twice, later or by the loser of a race, revokes what it issued.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.requests import OAuth2Request
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import select, update

from livegate import audit
from livegate.db.models import AuthorizationCode, Grant, utcnow
from livegate.oauth import scopes, tokens
from livegate.oauth.adapters import Client, Code
from livegate.oauth.requests import LivegateRequest, quoted
from livegate.secrets import CODE_PREFIX, digest, new_secret
from livegate.vault import Vault

if TYPE_CHECKING:
    from livegate.oauth.server import LivegateServer

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

# The same words whether the code does not exist or is another client's: they must not tell
# another app that a code exists.
CODE_REFUSED = "The authorization code is unknown or was issued to another client."


def checked_scope(requested: str, allowed: list[str], offer: str) -> list[str]:
    """`requested` as canonical names when each is known and in `allowed`; otherwise
    invalid_scope naming the first that is not, and `offer`: what may be asked for."""
    try:
        names = scopes.parse(requested)
    except scopes.UnknownScope as exc:
        named = quoted(exc.args[0], "in the request")
        raise InvalidScopeError(f"Unknown scope {named}; {offer}.") from exc
    outside = [name for name in names if name not in allowed]
    if outside:
        raise InvalidScopeError(f"The scope '{outside[0]}' is not allowed here; {offer}.")
    return names


class S256Only(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1: `plain` is refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            # RFC 7636 would default a missing method to plain, which we never accept.
            raise InvalidRequestError(
                "'code_challenge_method' must be 'S256' ('plain' is refused)."
            )
        client = grant.request.client
        if not data.get("code_challenge") and isinstance(client, Client) and client.row.is_public:
            # RFC 9700 §2.1.1: public clients must use PKCE; refuse before the user signs in.
            raise InvalidRequestError("Public clients must send a PKCE 'code_challenge' (S256).")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        try:
            super().validate_code_verifier(grant, result)
        except InvalidGrantError:
            raise InvalidGrantError(
                "The 'code_verifier' does not match the 'code_challenge' of the authorization "
                "request."
            ) from None


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: LivegateServer
    request: LivegateRequest
    # Set for one response by the authorization service: the sign-in derives the code from
    # its browser's binding secret, so the pending sign-in never stores it.
    issued_code: str | None = None

    # -- authorization endpoint -------------------------------------------------------------

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        uri = request.payload.redirect_uri
        if uri:
            if not client.check_redirect_uri(uri):
                raise InvalidRequestError(
                    "The 'redirect_uri' is not registered for this client; it must match a "
                    "registered one exactly."
                )
            return str(uri)
        default = client.get_default_redirect_uri()
        if not default:
            raise InvalidRequestError(
                "Missing 'redirect_uri': this client registered several, send the one to "
                "return to.",
                state=request.payload.state,
            )
        return default

    def validate_requested_scope(self) -> None:
        """Every scope named, known and registered for the client (RFC 6749 §3.3).

        A request without `scope` is refused rather than given every registered scope: what
        the user consents to is what the app asked for, and the app learns what it may ask.
        """
        registered = self.request.client.row.scopes
        offer = "this client is registered for: " + " ".join(registered)
        requested = self.request.payload.scope
        if not requested:
            raise InvalidScopeError(f"Ask for the scopes you need with 'scope'; {offer}.")
        checked_scope(requested, registered, offer)

    def generate_authorization_code(self) -> str:
        return self.issued_code or new_secret(CODE_PREFIX)

    def save_authorization_code(self, code: str, request: LivegateRequest) -> None:
        server, db = self.server, self.server.db
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
        db.add(row)
        db.flush()
        if request.data_key is not None and request.session_id is not None:
            server.vault.wrap(
                db, request.session_id, request.data_key, code, "code", row.expires_at
            )

    # -- token endpoint ---------------------------------------------------------------------

    def query_authorization_code(self, code: str, client: Client) -> Code:
        db = self.server.db
        row = db.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_digest == digest(code))
        )
        if row is None or row.client_pk != client.pk:
            raise InvalidGrantError(CODE_REFUSED)  # another app's attempt changes nothing
        # Decide under the grant's lock: a concurrent exchange of the same code has either
        # committed its tokens (and we revoke them below) or not begun.
        tokens.lock_grant(db, row.grant_id)
        db.refresh(row)
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a code used twice, later or by the loser of a race, revokes
            # what it issued.
            if row.family_id:
                tokens.revoke_family(db, row.family_id)
            audit.record(db, "code.reused", client_pk=row.client_pk, grant_id=row.grant_id)
            raise InvalidGrantError(
                "The authorization code was already used; the tokens it issued are revoked. "
                "Send the user through authorization again."
            )
        if row.expires_at <= utcnow():
            raise InvalidGrantError(
                f"The authorization code expired (codes live {self.server.settings.code_ttl} s); "
                "exchange it as soon as the redirect arrives."
            )
        claimed = db.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=utcnow(), family_id=pysecrets.token_hex(16))
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # rowcount: CursorResult, typed as Result
            raise InvalidGrantError("The authorization code was already used.")
        db.refresh(row)
        if row.redirect_uri and self.request.payload.redirect_uri != row.redirect_uri:
            # Checked after the claim, as Authlib would: a mismatch spends the code too.
            raise InvalidGrantError(
                "The 'redirect_uri' differs from the one of the authorization request."
            )
        self.request.presented_secret = code
        return Code(row)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        # The row stays (marked used) so a replay can be detected; only the wrapping goes.
        Vault.destroy_wraps(self.server.db, [authorization_code.row.code_digest])

    def authenticate_user(self, authorization_code: Code) -> Grant:
        grant_row = self.server.db.get(Grant, authorization_code.row.grant_id)
        if grant_row is None or grant_row.status != "active":
            raise InvalidGrantError("The authorization behind this code was revoked.")
        return grant_row
