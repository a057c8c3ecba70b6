"""The OAuth endpoints' answers, for the OpenAPI document (the routes answer plain dicts).

A JSON request (the Euler SDKs' dialect) gets each of them inside the envelope
`{code, message, data, error}` instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OAuthError(BaseModel):
    """RFC 6749 §5.2: a refusal."""

    error: str = Field(examples=["invalid_grant"])
    error_description: str | None = Field(
        default=None, examples=["The authorization code expired (codes live 60 s)."]
    )


class TokenAnswer(BaseModel):
    """RFC 6749 §5.1, plus the refresh token's remaining life."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105  # RFC 6749 §7.1 token type, not a secret
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    scope: str


class IntrospectionAnswer(BaseModel):
    """RFC 7662 §2.2; only `active` for a token that is not live or not the client's."""

    active: bool
    client_id: str | None = None
    token_type: str | None = None
    scope: str | None = None
    sub: str | None = None
    username: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None


class RefreshCheck(BaseModel):
    valid: bool
    scopes: list[str]
    tiktok_user_id: str | None
    country_code: str | None
    expires_in: int | None = None


class UserInfo(BaseModel):
    sub: str
    uid: str
    secUid: str | None
    nickName: str | None
    uniqueId: str | None
    region: str | None
    avatarUrl: str | None
    roomId: str | None
    hasLivePermission: bool | None
    isPrivateAccount: bool | None


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's documented refusals, each in the RFC 6749 §5.2 shape."""
    words = {
        400: "Bad request: the description says what to fix",
        401: "The client (or the access token) did not authenticate",
        403: "The access token lacks the scope",
        404: "Not found",
        429: "Too many failed client authentications from this address (Retry-After)",
    }
    return {status: {"model": OAuthError, "description": words[status]} for status in statuses}
