"""The refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2).

Every refresh returns a new refresh token; the presented one is rotated only once nothing
can refuse the request any more. The token is matched to the authenticated client before
anything else, and every decision is taken under the grant's row lock, so a rotated token
that comes back, later or as the loser of a race, revokes its whole family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError

from livegate import audit
from livegate.db.models import Grant, RefreshToken, utcnow
from livegate.oauth import tokens
from livegate.oauth.adapters import Client, Token
from livegate.oauth.grants.authorization_code import AUTH_METHODS, checked_scope
from livegate.oauth.requests import LivegateRequest
from livegate.vault import Vault

if TYPE_CHECKING:
    from livegate.oauth.server import LivegateServer

# The same words whether the token does not exist or is another client's: they must not tell
# another app that a token exists. What follows the client match may be precise.
REFRESH_REFUSED = "The refresh token is unknown or was issued to another client."
REAUTHORIZE = "Send the user through authorization again."
ALREADY_USED = (
    "The refresh token was already used: every refresh returns a new one, and a used one "
    f"presented again revokes every token of the authorization. {REAUTHORIZE}"
)


def _issued_to(row: RefreshToken, client: Any) -> bool:
    return isinstance(client, Client) and row.client_pk == client.pk


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: LivegateServer
    request: LivegateRequest

    def authenticate_refresh_token(self, refresh_token: str) -> Token:
        db = self.server.db
        row = tokens.find_refresh_token(db, refresh_token)
        # Authlib has authenticated the client by now but matches it to the token only after
        # this returns: match it first, so that another app's attempt changes nothing.
        if row is None or not _issued_to(row, self.request.client):
            raise InvalidGrantError(REFRESH_REFUSED)
        if row.expires_at <= utcnow():
            raise InvalidGrantError(f"The refresh token expired. {REAUTHORIZE}")
        # Decide under the grant's lock: a concurrent refresh with the same token has either
        # committed its new pair (and we revoke it below) or not begun.
        tokens.lock_grant(db, row.grant_id)
        db.refresh(row)
        if row.revoked_at is not None:
            raise InvalidGrantError(f"The refresh token was revoked. {REAUTHORIZE}")
        if row.rotated_at is not None:
            # RFC 9700 §4.14.2: a rotated token came back, later or as the loser of a race,
            # so the family is compromised.
            tokens.revoke_family(db, row.family_id)
            audit.record(db, "refresh.reused", client_pk=row.client_pk, grant_id=row.grant_id)
            raise InvalidGrantError(ALREADY_USED)
        if row.grant.status == "login_required":
            # The words the Euler SDKs and the webcast API use for it.
            raise InvalidGrantError("login_required")
        if row.grant.status != "active":
            raise InvalidGrantError(f"The user's authorization was revoked. {REAUTHORIZE}")
        self.request.presented_secret = refresh_token
        return Token(row, refresh_token)

    def _validate_token_scope(self, token: Token) -> None:
        """A refresh may narrow the scope, never widen it (RFC 6749 §6); aliases count as the
        scope they stand for, and the new tokens carry the canonical names."""
        requested = self.request.payload.scope
        if not requested:
            return
        granted = token.get_scope().split()
        offer = "a refresh may ask for at most: " + " ".join(granted)
        names = checked_scope(requested, granted, offer)
        self.request.payload.data["scope"] = " ".join(names)

    def save_token(self, token: dict[str, Any]) -> None:
        # The presented token is rotated only now, when nothing can refuse the request any
        # more (a scope it does not cover, say): a refused refresh leaves it as it was.
        if not tokens.claim_refresh_token(self.server.db, self.request.refresh_token.row):
            raise InvalidGrantError(ALREADY_USED)
        super().save_token(token)

    def authenticate_user(self, refresh_token: Token) -> Grant | None:
        grant_row: Grant = refresh_token.row.grant
        return grant_row if grant_row.status == "active" else None

    def revoke_old_credential(self, refresh_token: Token) -> None:
        Vault.destroy_wraps(self.server.db, [refresh_token.row.token_digest])
