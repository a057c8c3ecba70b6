"""The webcast API's refusals, as `LivegateError`s (the app renders them `{code, message,
error, ...}` on /webcast); each message says what the caller should change."""

from __future__ import annotations

import math
import time

from livegate.errors import LivegateError
from livegate.oauth import bearer
from livegate.oauth.bearer import www_authenticate
from livegate.tiktok.errors import UpstreamError

__all__ = [
    "BAD_KEY",
    "api_key_mismatch",
    "bad_api_key",
    "from_upstream",
    "insufficient_scope",
    "invalid_token",
    "no_credentials",
    "rate_limited",
    "session_required",
]

BAD_KEY = "invalid_api_key"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="livegate"'}


def invalid_token(description: str) -> LivegateError:
    """RFC 6750 §3.1's refusal, its description also in the body (the webcast envelope)."""
    error = bearer.invalid_token(description)
    error.extra["error_description"] = description
    return error


def no_credentials() -> LivegateError:
    # RFC 6750 §3.1: a request without any credential gets a challenge without an error code.
    return LivegateError(
        401,
        "missing_credentials",
        "Send an access token (Authorization: Bearer or x-oauth-token) or, for anonymous calls, "
        "an app's API key (X-Api-Key header or apiKey query parameter).",
        headers=_CHALLENGE,
    )


def bad_api_key() -> LivegateError:
    return LivegateError(
        401,
        BAD_KEY,
        "The API key is unknown or revoked: use a current key from the dashboard's API keys page.",
        headers=_CHALLENGE,
    )


def insufficient_scope(scope: str) -> LivegateError:
    description = (
        f"This call needs the {scope} scope, which the access token does not carry: "
        "send the user through authorization again asking for it."
    )
    return LivegateError(
        403,
        "insufficient_scope",
        description,
        headers={"WWW-Authenticate": www_authenticate("insufficient_scope", description, scope)},
        extra={"error_description": description, "scope": scope},
    )


def api_key_mismatch() -> LivegateError:
    return LivegateError(
        403,
        "api_key_mismatch",
        "The API key belongs to another app than the access token: send the token's own "
        "app's key, or none.",
    )


def session_required() -> LivegateError:
    return LivegateError(
        403,
        "session_required",
        "Sending chat needs a TikTok user session: an access token with the webcast:chat "
        "scope (or an API key with the caller's own x-cookie-header).",
    )


def rate_limited(
    message: str, *, label: str, retry: int, reset: int | None = None, limit: int | None = None
) -> LivegateError:
    """429 with the RateLimit-* and Retry-After headers.

    RateLimit-Remaining is the remaining quota (0 here), an integer: TikTokLive 7.0.1 reads
    it with int() on any 429, as seconds to wait, and crashes when it is missing.
    """
    headers = {
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(reset if reset is not None else math.ceil(time.time()) + retry),
        "Retry-After": str(retry),
    }
    if limit is not None:
        headers = {"RateLimit-Limit": str(limit), **headers}
    return LivegateError(
        429,
        "rate_limited",
        message,
        headers=headers,
        extra={"limit_label": label, "retry_after": retry},
    )


_UPSTREAM_MESSAGES = {
    "upstream_blocked": "TikTok refused the request (blocked or rate-limited upstream); "
    "try again later.",
    "upstream_empty": "TikTok returned an empty answer; try again later.",
    "upstream_timeout": "TikTok did not answer in time; try again.",
    "age_restricted": "The LIVE is age-restricted; it needs a signed-in TikTok user: call "
    "with an access token.",
    "private_room": "The LIVE is private; the signed-in TikTok user may not watch it.",
    "user_offline": "The user is not LIVE.",
    "user_not_found": "No such TikTok user: check the unique_id.",
    "room_not_found": "No such LIVE room: check the room_id.",
}


def from_upstream(exc: UpstreamError) -> LivegateError:
    """An upstream failure as our own answer (reference §4); the message names no secret."""
    message = _UPSTREAM_MESSAGES.get(exc.code, "TikTok answered in a way livegate cannot use.")
    return LivegateError(exc.status, exc.code, message)
