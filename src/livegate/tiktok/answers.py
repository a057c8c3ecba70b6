"""How TikTok's answers are read: HTTP status, JSON objects, the webcast envelope and its
`status_code`, challenge pages, Set-Cookie. Each way an answer can be unusable becomes one of
`livegate.tiktok.errors`; nothing here sends a request.
"""

from __future__ import annotations

import enum
from typing import Any

from livegate.tiktok.cookies import cookie_pair
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    RoomNotFound,
    SessionExpired,
    UpstreamBlocked,
    UpstreamEmpty,
    UpstreamError,
)
from livegate.tiktok.http import Answer

# TikTok's webcast JSON status codes that mean something to us.
STATUS_LOGIN_REQUIRED = 20003  # "Please login first": no session, or one TikTok has ended
STATUS_PARAMS_ERROR = 10011  # "Request params error" stub of an age-restricted room
STATUS_ROOM_RESTRICTED = 4003110  # restricted room stub (age or private)
STATUS_ROOM_NOT_FOUND = 30001  # no such room
AGE_RESTRICTED_CODES = frozenset({STATUS_PARAMS_ERROR, STATUS_ROOM_RESTRICTED})
# api-live/user/room's statusCode (message "user_not_found") for an unknown uniqueId, and
# also for an account that exists but is not LIVE (one that has never gone LIVE, say).
STATUS_USER_NOT_FOUND = 19881007
# api/user/detail's statusCode for an account that does not exist.
STATUS_DETAIL_USER_NOT_FOUND = 10202

_WAF_MARKERS = ("_wafchallengeid", "Please wait...", "wafchallenge", "captcha")


class LiveState(enum.StrEnum):
    LIVE = "live"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


def live_state(status: object) -> LiveState:
    """A room's or user's `status` (2 live, 4 ended) as a LiveState."""
    if status == 2:
        return LiveState.LIVE
    if status == 4:
        return LiveState.OFFLINE
    return LiveState.UNKNOWN


def looks_blocked(text: str) -> bool:
    """Whether a page is TikTok's WAF or captcha challenge rather than an answer."""
    return any(marker in text for marker in _WAF_MARKERS)


def json_or_none(response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def as_int(value: Any) -> int | None:
    """An integer TikTok sent as a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def json_object(response: Answer, what: str) -> dict[str, Any]:
    """The answer's body as a JSON object, whatever its HTTP status."""
    if not response.body.strip():
        raise UpstreamEmpty(f"{what}: empty answer (HTTP {response.status})")
    body = json_or_none(response)
    if body is None:
        raise UpstreamError(f"{what}: answer is not JSON (HTTP {response.status})")
    if not isinstance(body, dict):
        raise UpstreamError(f"{what}: answer is not a JSON object")
    return body


def set_cookies(response: Answer) -> dict[str, str]:
    """Name and value of every cookie the answer sets, the last one winning."""
    out: dict[str, str] = {}
    for line in response.header_list("set-cookie"):
        pair = cookie_pair(line)
        if pair is not None:
            out[pair[0]] = pair[1]
    return out


def check_http(response: Answer, what: str) -> None:
    status = response.status
    if status == 401:
        raise SessionExpired(f"{what}: TikTok refused the session (HTTP 401)")
    if status == 403:
        raise UpstreamBlocked(f"{what}: TikTok answered 403")
    if status == 429:
        raise UpstreamBlocked(f"{what}: TikTok rate-limited the request (HTTP 429)")
    if status >= 400:
        raise UpstreamError(f"{what}: TikTok answered HTTP {status}")
    if status >= 300:
        # A redirect from an API endpoint is TikTok sending us to a login or WAF page.
        raise UpstreamBlocked(f"{what}: TikTok redirected the request (HTTP {status})")


def json_body(response: Answer, what: str) -> dict[str, Any]:
    """The answer's JSON object, after its HTTP status is checked."""
    check_http(response, what)
    if not response.body:
        raise UpstreamEmpty(f"{what}: TikTok returned an empty body")
    data = json_or_none(response)
    if not isinstance(data, dict):
        if looks_blocked(response.text[:4000]):
            raise UpstreamBlocked(f"{what}: TikTok returned a challenge page")
        raise UpstreamError(f"{what}: TikTok did not return JSON")
    return data


def check_webcast_status(data: dict[str, Any], what: str) -> None:
    """Map a non-zero webcast `status_code` to our error types."""
    code = data.get("status_code")
    if code in (0, None):
        return
    inner = as_dict(data.get("data"))
    text = " ".join(str(inner.get(k) or "") for k in ("message", "prompts")).strip()
    if code == STATUS_LOGIN_REQUIRED:
        raise SessionExpired(f"{what}: TikTok wants a login ({text or 'login expired'})")
    if code in AGE_RESTRICTED_CODES:
        if "private" in text.lower():
            raise PrivateRoom(f"{what}: the LIVE is private")
        raise AgeRestricted(f"{what}: the LIVE is age-restricted")
    if code == STATUS_ROOM_NOT_FOUND:
        raise RoomNotFound(f"{what}: no such room")
    raise UpstreamError(f"{what}: TikTok status_code {code}")


def webcast_data(response: Answer, what: str) -> Any:
    """The `data` of a webcast JSON answer whose HTTP status and `status_code` say success."""
    body = json_body(response, what)
    check_webcast_status(body, what)
    return body.get("data")


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def euler_ranks(data: dict[str, Any], rank_type: str) -> dict[str, Any]:
    """A ranklist's `data` in Euler's `/webcast/rankings` shape."""
    ranks = [_euler_rank(entry) for entry in data.get("ranks") or [] if isinstance(entry, dict)]
    view = as_dict(data.get("rank_view"))
    return {
        "ranks": ranks,
        "rank_title": str(view.get("title") or data.get("title") or ""),
        "rank_type": str(data.get("rank_type") or rank_type),
        "resets_at": int(data.get("next_reset_time") or 0),
        "resets_in": int(data.get("countdown") or 0),
    }


def _euler_rank(entry: dict[str, Any]) -> dict[str, Any]:
    user = as_dict(entry.get("user"))
    thumb = user.get("avatar_thumb")
    urls = thumb.get("url_list") if isinstance(thumb, dict) else thumb
    return {
        "rank": int(entry.get("rank") or 0),
        "diamonds": int(entry.get("score") or 0),
        "diamonds_description": str(entry.get("score_description") or ""),
        "user": {
            "nickname": str(user.get("nickname") or ""),
            "numeric_id": str(user.get("id_str") or user.get("id") or ""),
            "unique_id": str(user.get("display_id") or ""),
            "avatar_thumb": [str(u) for u in urls] if isinstance(urls, list) else [],
        },
    }
