"""Error answers of the webcast API: always JSON `{code, message, ...}`, never a traceback."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from livegate.oauth.bearer import www_authenticate
from livegate.tiktok.errors import UpstreamError


class ApiError(Exception):
    """A refusal the caller gets as `{code, message, error?, ...extra}` with HTTP `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.error:
            body["error"] = self.error
        body.update(self.extra)
        headers = {"Cache-Control": "no-store", **self.headers}
        return JSONResponse(body, status_code=self.status, headers=headers)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, error="invalid_request")


def invalid_token(description: str) -> ApiError:
    """RFC 6750 §3.1: 401 with a Bearer challenge naming `invalid_token`."""
    return ApiError(
        401,
        description,
        error="invalid_token",
        error_description=description,
        headers={"WWW-Authenticate": www_authenticate("invalid_token", description)},
    )


def no_credentials() -> ApiError:
    # RFC 6750 §3.1: a request without any credential gets a challenge without an error code.
    return ApiError(
        401,
        "Send an access token (Authorization: Bearer or x-oauth-token) or, for anonymous calls, "
        "an app's API key (X-Api-Key header or apiKey query parameter).",
        error="missing_credentials",
        headers={"WWW-Authenticate": 'Bearer realm="livegate"'},
    )


def insufficient_scope(scope: str) -> ApiError:
    description = f"This call needs the {scope} scope, which the access token does not carry."
    return ApiError(
        403,
        description,
        error="insufficient_scope",
        error_description=description,
        scope=scope,
        headers={"WWW-Authenticate": www_authenticate("insufficient_scope", description, scope)},
    )


def from_upstream(exc: UpstreamError) -> ApiError:
    """An upstream failure as our own answer (reference §4); the message names no secret."""
    messages = {
        "upstream_blocked": "TikTok refused the request (blocked or rate-limited upstream).",
        "upstream_empty": "TikTok returned an empty answer; try again later.",
        "upstream_timeout": "TikTok did not answer in time; try again.",
        "age_restricted": "The LIVE is age-restricted; it needs a signed-in TikTok user.",
        "private_room": "The LIVE is private; the signed-in TikTok user may not watch it.",
        "user_offline": "The user is not LIVE.",
        "user_not_found": "No such TikTok user.",
        "room_not_found": "No such LIVE room.",
    }
    message = messages.get(exc.code, "TikTok answered in a way livegate cannot use.")
    return ApiError(exc.status, message, error=exc.code)
