"""The endpoints beside the grants: revocation (RFC 7009), introspection (RFC 7662), the
server's metadata (RFC 8414) and the signed-in user's profile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749.errors import InvalidRequestError

from livegate.oauth import tokens
from livegate.oauth.adapters import Client, Token
from livegate.oauth.requests import LivegateRequest

if TYPE_CHECKING:
    from livegate.oauth.server import LivegateServer


class PresentedToken:
    """What revocation and introspection share: a `token` parameter, found by its value."""

    server: LivegateServer

    def check_params(self, request: LivegateRequest, client: Client) -> None:
        # An unknown token_type_hint is no error (RFC 7009 §2.1, RFC 7662 §2.1): it only
        # widens the search.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token': send the token this request is about.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        row = tokens.find_token(self.server.db, token_string, token_type_hint)
        return Token(row, token_string) if row is not None else None
