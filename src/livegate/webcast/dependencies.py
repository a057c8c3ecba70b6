"""What every /webcast route depends on: its caller (checked against the database on every
call), the scope it needs and its rate limit, as FastAPI security dependencies, so that the
OpenAPI document names the credentials and scopes of each operation.

A route takes `Annotated[Principal, Security(connects | calls | caller, scopes=[scope])]`;
`connects` and `calls` count the call in their rate-limit category after the caller passed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import (
    APIKeyHeader,
    APIKeyQuery,
    OAuth2AuthorizationCodeBearer,
    SecurityScopes,
)
from starlette.requests import HTTPConnection

from livegate.oauth.scopes import CATALOGUE
from livegate.ratelimit import client_address
from livegate.webcast.auth import Presented, Principal
from livegate.webcast.ratelimit import CALLS, CONNECT
from livegate.webcast.service import WebcastService

PRINCIPAL = "livegate.webcast.principal"  # scope key: the caller, for the route's pipeline

access_token = OAuth2AuthorizationCodeBearer(
    authorizationUrl="/tiktok/oauth/authorize",
    tokenUrl="/tiktok/oauth/token",
    refreshUrl="/tiktok/oauth/token",
    scopes={name: info.description for name, info in CATALOGUE.items()},
    scheme_name="accessToken",
    description="`Authorization: Bearer <access token>`: the user's TikTok session signs "
    "the upstream call.",
    auto_error=False,
)
x_oauth_token = APIKeyHeader(
    name="x-oauth-token",
    scheme_name="xOAuthToken",
    description="The access token, as the Euler SDKs send it.",
    auto_error=False,
)
api_key_header = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="apiKey",
    description="An app's API key: alone, an anonymous call (no user session); beside a "
    "token, it must be the token's app's.",
    auto_error=False,
)
api_key_query = APIKeyQuery(
    name="apiKey",
    scheme_name="apiKeyQuery",
    description="The API key in the query, as TikTokLive sends it.",
    auto_error=False,
)


def service(conn: HTTPConnection) -> WebcastService:
    webcast: WebcastService = conn.app.state.webcast
    return webcast


def _stripped(value: str | None) -> str | None:
    return value.strip() or None if value else None


async def caller(
    request: Request,
    security_scopes: SecurityScopes,
    bearer: Annotated[str | None, Depends(access_token)],
    oauth_token: Annotated[str | None, Depends(x_oauth_token)],
    key: Annotated[str | None, Depends(api_key_header)],
    key_in_query: Annotated[str | None, Depends(api_key_query)],
    x_cookie_header: Annotated[
        str | None,
        Header(
            description="With an API key alone: the caller's own TikTok cookies to sign "
            "with. Never beside an access token."
        ),
    ] = None,
) -> Principal:
    """The caller, checked against the database now. A route that names a scope calls
    TikTok, so the token's session is opened too; one that names none (rate_limits) does not."""
    presented = Presented(
        token=_stripped(bearer) or _stripped(oauth_token),
        api_key=_stripped(key) or _stripped(key_in_query),
        cookie_header=x_cookie_header,
        address=client_address(request),
    )
    scopes = security_scopes.scopes
    principal = await service(request).auth.authenticate(
        presented, scopes, with_session=bool(scopes)
    )
    request.scope[PRINCIPAL] = principal
    return principal


async def connects(
    request: Request, principal: Annotated[Principal, Security(caller)]
) -> Principal:
    """The caller, counted as a connection start (fetch, connect)."""
    await service(request).limiter.hit(CONNECT, principal.credentials())
    return principal


async def calls(request: Request, principal: Annotated[Principal, Security(caller)]) -> Principal:
    """The caller, counted as a call (everything but connection starts)."""
    await service(request).limiter.hit(CALLS, principal.credentials())
    return principal
