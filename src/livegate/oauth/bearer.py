"""Bearer tokens on resource endpoints (RFC 6750): where they come from, how refusals look."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


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


def bearer_error(
    status: int, error: str, description: str, scope: str | None = None, code_style: bool = False
) -> JSONResponse:
    headers = {
        "WWW-Authenticate": www_authenticate(error, description, scope),
        "Cache-Control": "no-store",
    }
    if error == "invalid_request" and status == 401:
        # RFC 6750 §3.1: a request with no token gets no error code in the challenge.
        headers["WWW-Authenticate"] = 'Bearer realm="livegate"'
    body: dict[str, object] = {"error": error, "error_description": description}
    if code_style:
        body = {"code": status, "message": description, "error": error}
    if scope:
        body["scope"] = scope
    return JSONResponse(body, status_code=status, headers=headers)
