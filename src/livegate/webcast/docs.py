"""What the OpenAPI document says about the /webcast routes beyond their signatures: the error
answers each can give (all `{code, message, error}`), their headers, and the fetch routes'
protobuf body and WebSocket relay."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from livegate.webcast.responses import PROTOBUF, FetchResponse
from livegate.webcast.schemas import Forbidden, InvalidToken, RateLimited, WebcastError


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


_RATE_HEADERS = {
    "RateLimit-Limit": _header("The limit's quota (call limits only).", "integer"),
    "RateLimit-Remaining": _header("Always 0 on a 429.", "integer"),
    "RateLimit-Reset": _header("POSIX time the window ends.", "integer"),
    "Retry-After": _header("Seconds to wait.", "integer"),
}
_CHALLENGE = {"WWW-Authenticate": _header("RFC 6750 Bearer challenge.")}

# status: (model, description, headers)
_ERRORS: dict[int | str, tuple[type[BaseModel], str, dict[str, Any]]] = {
    400: (
        WebcastError,
        "invalid_request: a parameter or body field is missing or not what TikTok accepts "
        "(the message names it), or a token came with x-cookie-header or session_id.",
        {},
    ),
    401: (
        InvalidToken,
        "missing_credentials (send a token or an API key), invalid_token (unknown, revoked, "
        "expired, or `login_required`: sign the user in again), invalid_api_key, or "
        "login_required (TikTok refused the caller's own session).",
        _CHALLENGE,
    ),
    403: (
        Forbidden,
        "insufficient_scope (`scope` names the one needed), api_key_mismatch, "
        "session_required (chat), age_restricted or private_room.",
        _CHALLENGE,
    ),
    404: (
        WebcastError,
        "user_offline, user_not_found or room_not_found (TikTok's answer).",
        {},
    ),
    429: (
        RateLimited,
        "rate_limited: too many calls for this token or API key in the category "
        "(`limit_label`), or too many unknown API keys from this address.",
        _RATE_HEADERS,
    ),
    500: (WebcastError, "server_error: livegate failed; the log has the details.", {}),
    502: (
        WebcastError,
        "upstream_blocked, upstream_empty or upstream_error: TikTok's answer was unusable.",
        {},
    ),
    503: (WebcastError, "temporarily_unavailable: try again.", {}),
    504: (WebcastError, "upstream_timeout: TikTok did not answer in time.", {}),
    "default": (WebcastError, "Any other refusal (413, 414, 431: size limits), same shape.", {}),
}
_UPSTREAM = (404, 502, 504)
_NO_UPSTREAM = (400, 401, 403, 429, 500, 503, "default")


def _errors(statuses: tuple[int | str, ...], *, as_ref: bool) -> dict[int | str, Any]:
    """The documented errors; `as_ref` for a route whose own media type is not JSON (FastAPI
    would list a `model` under it), naming the schema instead."""
    out: dict[int | str, Any] = {}
    for status in statuses:
        model, description, headers = _ERRORS[status]
        entry: dict[str, Any] = {"description": description}
        if headers:
            entry["headers"] = headers
        if as_ref:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            entry["content"] = {"application/json": {"schema": ref}}
        else:
            entry["model"] = model
        out[status] = entry
    return out


def json_route(scope: str | None) -> dict[str, Any]:
    """Keyword arguments of a JSON route that needs `scope` (None: any valid caller)."""
    statuses = _NO_UPSTREAM + (_UPSTREAM if scope else ())
    return {
        "responses": _errors(statuses, as_ref=False),
        "openapi_extra": {"x-scopes": [scope] if scope else []},
    }


_PROTOBUF_OK = {
    "description": "TikTok's ProtoMessageFetchResult, as TikTok sent it; for a fetch signed "
    "with the user's session, push_server names livegate's WebSocket relay.",
    "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}},
    "headers": {
        "X-Set-TT-Cookie": _header("TikTok's visitor cookies for the client (never the user's)."),
        "x-room-id": _header("The room fetched."),
    },
}

PROTOBUF_ROUTE: dict[str, Any] = {
    "response_class": FetchResponse,
    "status_code": 200,
    "responses": {200: _PROTOBUF_OK, **_errors(_NO_UPSTREAM + _UPSTREAM, as_ref=True)},
    "openapi_extra": {"x-scopes": ["webcast:fetch"]},
}

FETCH_DESCRIPTION = """\
A LIVE room's events: TikTok's `ProtoMessageFetchResult`, with TikTokLive's query
(`room_id` or `unique_id`, `cursor`, `client_enter`, `user_agent`; an API key caller may add its
own `session_id` and `tt_target_idc`). Scope: `webcast:fetch`; counted as a connection start.

With an access token, the user's TikTok session signs the call, and TikTok binds the push
WebSocket to that session. livegate never hands the session out: it rewrites `push_server` to
its own relay, `ws(s)://<livegate>/webcast/ws/{ticket}/`, a WebSocket (not in this document)
that takes the usual push query, opens TikTok's push server with the session and relays
frames both ways. The ticket is single use, valid 60 s, bound to the grant and the token.
When the token or its grant dies (revoked, expired, `login_required`) the relay closes with
code 4401; an unusable ticket or token is refused at the handshake with HTTP 200 and
`handshake-status` / `handshake-msg` headers, as TikTok refuses one. Anonymous fetches keep
TikTok's `push_server`.
"""


_EVENT_STREAM_OK = {
    "description": '`text/event-stream`: first `data: {"type": "roomInfo", "data": {...}}` '
    '(no id), then one event per TikTok message, `id: <ms>-<n>` and `data: {"type", "data"}` '
    "(the WebSocket's `format=json` events); `event: gap` when `Last-Event-ID` is older than "
    "the buffer; `: keepalive` comments; last, `event: error` with `{code, message}` (the "
    "WebSocket's close codes) when the stream ends.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "headers": {
        "Access-Control-Allow-Origin": _header("`*`: browsers on any origin may read it."),
        "Cache-Control": _header("`no-store`."),
    },
}

EVENT_STREAM_ROUTE: dict[str, Any] = {
    "status_code": 200,
    "responses": {200: _EVENT_STREAM_OK, **_errors(_NO_UPSTREAM + _UPSTREAM, as_ref=True)},
    "openapi_extra": {"x-scopes": ["webcast:fetch"]},
}
