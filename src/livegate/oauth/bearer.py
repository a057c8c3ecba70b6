"""Bearer tokens on resource endpoints (RFC 6750): where they come from, how refusals look."""

from __future__ import annotations

from starlette.requests import Request

from livegate.errors import LivegateError

# RFC 6750 §3.1: a request with no token gets a challenge without an error code.
NO_TOKEN_CHALLENGE = 'Bearer realm="livegate"'  # noqa: S105  # a header value, not a secret


def extract_token(request: Request) -> str | None:
    """`Authorization: Bearer <t>` (RFC 6750 §2.1) or `x-oauth-token: <t>` (the Euler SDKs)."""
    return bearer_token(request.headers.get("authorization"), request.headers.get("x-oauth-token"))


def bearer_token(authorization: str | None, x_oauth_token: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header, else of an `x-oauth-token` header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_oauth_token.strip() if x_oauth_token and x_oauth_token.strip() else None


def www_authenticate(error: str, description: str, scope: str | None = None) -> str:
    parts = [
        'realm="livegate"',
        f'error="{error}"',
        f'error_description="{description.replace(chr(34), chr(39))}"',
    ]
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


def token_required() -> LivegateError:
    return LivegateError(
        401,
        "invalid_request",
        "Send an access token: Authorization: Bearer <token>, or x-oauth-token: <token>.",
        headers={"WWW-Authenticate": NO_TOKEN_CHALLENGE},
    )


def invalid_token(description: str) -> LivegateError:
    """RFC 6750 §3.1: 401 and a challenge naming `invalid_token`."""
    return LivegateError(
        401,
        "invalid_token",
        description,
        headers={"WWW-Authenticate": www_authenticate("invalid_token", description)},
    )


def insufficient_scope(scope: str) -> LivegateError:
    """RFC 6750 §3.1: 403 and a challenge naming the scope the call needs."""
    description = f"This call needs the '{scope}' scope, which the access token does not carry."
    return LivegateError(
        403,
        "insufficient_scope",
        description,
        headers={"WWW-Authenticate": www_authenticate("insufficient_scope", description, scope)},
        extra={"scope": scope},
    )
