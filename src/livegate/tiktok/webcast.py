"""The upstream webcast client: TikTok's im/fetch, live checks, room info, chat and rankings.

It knows only base URLs (`settings.webcast_url`, `settings.www_url`); whatever answers there is
TikTok. Every public call finishes or fails within `settings.upstream_timeout`, and fails only
with `livegate.tiktok.errors` types. Cookie values never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlencode

import httpx

from livegate.config import Settings
from livegate.tiktok import wire
from livegate.tiktok.cookies import cookie_header, cookie_pair
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    RoomNotFound,
    SessionExpired,
    UpstreamBlocked,
    UpstreamEmpty,
    UpstreamError,
    UpstreamTimeout,
    UserNotFound,
    UserOffline,
)
from livegate.tiktok.http import DEFAULT_USER_AGENT, BufferedResponse, UpstreamClient
from livegate.tiktok.signer import Signer

log = logging.getLogger(__name__)

T = TypeVar("T")

AID = "1988"

# TikTok's webcast JSON status codes that mean something to us.
STATUS_LOGIN_REQUIRED = 20003  # "Please login first": no session, or one TikTok has ended
STATUS_PARAMS_ERROR = 10011  # "Request params error" stub of an age-restricted room
STATUS_ROOM_RESTRICTED = 4003110  # restricted room stub (age or private)
STATUS_ROOM_NOT_FOUND = 30001  # no such room
AGE_RESTRICTED_CODES = frozenset({STATUS_PARAMS_ERROR, STATUS_ROOM_RESTRICTED})
# ProtoMessageFetchResult's field numbers the fetch path reads on the wire (all
# length-delimited).
FETCH_MESSAGES_FIELD = 1
FETCH_CURSOR_FIELD = 2
FETCH_PUSH_SERVER_FIELD = 10
# What the walk of each fetch result keeps (the cursor, and push_server for the splice), and
# the fields it refuses in any other wire type: one pass over every message's field.
_FETCH_KEPT = frozenset({FETCH_CURSOR_FIELD, FETCH_PUSH_SERVER_FIELD})
_FETCH_FRAMED = frozenset({FETCH_MESSAGES_FIELD, FETCH_CURSOR_FIELD})
# api-live/user/room's statusCode for an unknown uniqueId (message "user_not_found").
STATUS_USER_NOT_FOUND = 19881007

_FETCH_CONSTANTS = urlencode(
    {
        "resp_content_type": "protobuf",
        "did_rule": "3",
        "fetch_rule": "1",
        "last_rtt": "0",
        "live_id": "12",
        "version_code": "180800",
        "webcast_sdk_version": "1.3.0",
        "update_version_code": "1.3.0",
    }
)
_SIGI_RE = re.compile(r'<script id="SIGI_STATE" type="application/json">(.*?)</script>', re.S)
_WAF_MARKERS = ("_wafchallengeid", "Please wait...", "wafchallenge", "captcha")


class LiveState(enum.StrEnum):
    LIVE = "live"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass
class FetchResult:
    body: bytes  # the raw ProtoMessageFetchResult, exactly as TikTok sent it
    set_cookies: dict[str, str]  # what TikTok set (ttwid, msToken...), for X-Set-TT-Cookie
    room_id: str
    top: list[wire.Field]  # body's top-level cursor and push_server fields, walked once here

    def x_set_tt_cookie(self) -> str:
        """`set_cookies` as the `X-Set-TT-Cookie` value TikTokLive parses with SimpleCookie."""
        return "; ".join(f"{k}={v}" for k, v in self.set_cookies.items())


def browser_params(user_agent: str) -> dict[str, str]:
    """The fingerprint parameters TikTok's web client derives from its user agent.

    TikTok's web app sends navigator.appCodeName/appVersion, i.e. the user agent split at its
    first slash; they must agree with the User-Agent header or the request looks forged.
    """
    name, _, version = user_agent.partition("/")
    if "Macintosh" in user_agent:
        platform, os_name = "MacIntel", "mac"
    elif "Linux" in user_agent and "Android" not in user_agent:
        platform, os_name = "Linux x86_64", "linux"
    else:
        platform, os_name = "Win32", "windows"
    return {
        "aid": AID,
        "app_language": "en",
        "app_name": "tiktok_web",
        "browser_language": "en-US",
        "browser_name": name,
        "browser_online": "true",
        "browser_platform": platform,
        "browser_version": version,
        "channel": "tiktok_web",
        "cookie_enabled": "true",
        "data_collection_enabled": "true",
        "device_platform": "web_pc",
        "focus_state": "true",
        "from_page": "",
        "history_len": "4",
        "is_fullscreen": "false",
        "is_page_visible": "true",
        "os": os_name,
        "priority_region": "US",
        "region": "US",
        "screen_height": "1080",
        "screen_width": "1920",
        "tz_name": "America/New_York",
        "webcast_language": "en",
    }


@functools.lru_cache(maxsize=256)
def browser_query(user_agent: str) -> str:
    """`browser_params` URL-encoded, once per user agent: the fetch path sends it every poll."""
    return urlencode(browser_params(user_agent))


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def _quoted(value: str) -> str:
    """`quote_plus(value)`, which leaves these characters as they are: room ids and cursors
    are digits, and quote_plus's Python layers cost more than the rest of the query."""
    return value if _URL_SAFE.fullmatch(value) else quote_plus(value)


def parse_set_cookies(response: BufferedResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in response.header_list("set-cookie"):
        pair = cookie_pair(line)
        if pair is not None:
            out[pair[0]] = pair[1]
    return out


def _looks_blocked(text: str) -> bool:
    return any(marker in text for marker in _WAF_MARKERS)


def _json_or_none(response: BufferedResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class WebcastClient:
    def __init__(self, http: UpstreamClient, settings: Settings, signer: Signer) -> None:
        self.http = http
        self.settings = settings
        self.signer = signer

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One overall deadline per public call, and only our error types out of it."""
        try:
            async with asyncio.timeout(self.settings.upstream_timeout):
                return await call()
        except UpstreamError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamTimeout(f"{what}: TikTok did not answer in time") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise UpstreamError(f"{what}: {type(exc).__name__}") from exc
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise UpstreamError(f"{what}: unusable answer ({type(exc).__name__})") from exc

    async def _request(
        self,
        method: str,
        base: str,
        path: str,
        params: dict[str, str] | str,
        *,
        cookies: dict[str, str] | None = None,
        user_agent: str | None = None,
        form: dict[str, str] | None = None,
        accept: str = "application/json, text/plain, */*",
    ) -> BufferedResponse:
        jar = dict(cookies or {})
        ua = user_agent or DEFAULT_USER_AGENT
        query = params if isinstance(params, str) else urlencode(params)
        url = f"{base}{path}?{query}"
        payload = urlencode(form) if form is not None else None
        signed = await self.signer.sign(
            url, method=method, user_agent=ua, cookies=jar, payload=payload
        )
        jar.update(signed.cookies)
        headers = {
            "User-Agent": signed.user_agent,
            "Accept": accept,
            "Accept-Language": "en-US,en;q=0.9",
            "Referer": f"{self.settings.www_url}/",
            "Origin": self.settings.www_url,
            **signed.headers,
        }
        if jar:
            headers["Cookie"] = cookie_header(jar)
        content: bytes | None = None
        if payload is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = payload.encode()
        # Only these headers go out, never the shared client's cookie jar: one user's TikTok
        # cookies must not ride along on another's request.
        try:
            response = await self.http.send_buffered(method, signed.url, headers, content)
        except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError):
            # Under load a pooled keep-alive connection may be closed by the peer just as we
            # reuse it; a GET is safe to send once more, still inside the call's deadline.
            if method != "GET":
                raise
            response = await self.http.send_buffered(method, signed.url, headers, content)
        return response

    def _check_http(self, response: BufferedResponse, what: str) -> None:
        status = response.status_code
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

    def _json(self, response: BufferedResponse, what: str) -> dict[str, Any]:
        self._check_http(response, what)
        if not response.content:
            raise UpstreamEmpty(f"{what}: TikTok returned an empty body")
        data = _json_or_none(response)
        if not isinstance(data, dict):
            if _looks_blocked(response.text[:4000]):
                raise UpstreamBlocked(f"{what}: TikTok returned a challenge page")
            raise UpstreamError(f"{what}: TikTok did not return JSON")
        return data

    def _webcast_status(self, data: dict[str, Any], what: str) -> None:
        """Map a non-zero webcast `status_code` to our error types."""
        code = data.get("status_code")
        if code in (0, None):
            return
        inner = _dict(data.get("data"))
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

    # -- im/fetch ---------------------------------------------------------------------------

    async def fetch(
        self,
        room_id: str,
        *,
        cookies: dict[str, str] | None = None,
        cursor: str = "",
        internal_ext: str = "",
        user_agent: str | None = None,
        client_enter: bool = True,
    ) -> FetchResult:
        ua = user_agent or DEFAULT_USER_AGENT
        # What urlencode() of these four gives, byte for byte; the names need no quoting.
        dynamic = (
            f"user_is_login={'true' if cookies and cookies.get('sessionid') else 'false'}"
            f"&room_id={_quoted(room_id)}&cursor={_quoted(cursor)}"
            f"&internal_ext={_quoted(internal_ext)}"
        )
        query = f"{browser_query(ua)}&{dynamic}&{_FETCH_CONSTANTS}"
        if client_enter:
            query += "&client_enter=1"

        async def call() -> FetchResult:
            response = await self._request(
                "GET",
                self.settings.webcast_url,
                "/webcast/im/fetch/",
                query,
                cookies=cookies,
                user_agent=ua,
                accept="application/protobuf, application/json, */*",
            )
            self._check_http(response, "im/fetch")
            body = response.content
            if not body:
                raise UpstreamEmpty("im/fetch: TikTok returned an empty body")
            ctype = response.header("content-type") or ""
            # '{' (field 15, start-group) and '<' (field 7, end-group) never begin a valid
            # ProtoMessageFetchResult, so these are JSON or HTML whatever the header says.
            if "json" in ctype or body[:1] == b"{":
                data = _json_or_none(response)
                if not isinstance(data, dict):
                    raise UpstreamError("im/fetch: malformed JSON answer")
                self._webcast_status(data, "im/fetch")
                raise UpstreamError("im/fetch: JSON instead of protobuf")
            if "html" in ctype or body[:256].lstrip()[:1] == b"<":
                if _looks_blocked(response.text[:4000]):
                    raise UpstreamBlocked("im/fetch: TikTok returned a challenge page")
                raise UpstreamError("im/fetch: HTML instead of protobuf")
            try:
                top = wire.fields(body, _FETCH_KEPT, _FETCH_FRAMED)
            except ValueError as exc:
                raise UpstreamError("im/fetch: undecodable protobuf") from exc
            if not any(f.number == FETCH_CURSOR_FIELD and f.end > f.value_start for f in top):
                raise UpstreamError("im/fetch: result has no cursor")
            return FetchResult(body, parse_set_cookies(response), room_id, top)

        return await self._run("im/fetch", call)

    # -- room id / live state ---------------------------------------------------------------

    async def _user_room(self, unique_id: str, cookies: dict[str, str] | None) -> dict[str, Any]:
        params = browser_params(DEFAULT_USER_AGENT)
        params.update({"uniqueId": unique_id, "sourceType": "54"})
        response = await self._request(
            "GET", self.settings.www_url, "/api-live/user/room/", params, cookies=cookies
        )
        data = self._json(response, "api-live/user/room")
        if data.get("message") == "user_not_found" or data.get("statusCode") == (
            STATUS_USER_NOT_FOUND
        ):
            raise UserNotFound(f"no TikTok LIVE user {unique_id!r}")
        if data.get("statusCode") not in (0, None):
            raise UpstreamError(f"api-live/user/room: statusCode {data.get('statusCode')}")
        inner = data.get("data")
        if not isinstance(inner, dict) or not isinstance(inner.get("user"), dict):
            raise UpstreamError("api-live/user/room: answer without user data")
        live_room = _dict(inner.get("liveRoom"))
        status = live_room.get("status", inner["user"].get("status"))
        out = dict(inner)
        out["live_state"] = _live_state(status)
        return out

    async def user_room(
        self, unique_id: str, *, cookies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """api-live/user/room's `data` (`user`, `liveRoom`) plus `live_state`: a LiveState."""
        return await self._run("api-live/user/room", lambda: self._user_room(unique_id, cookies))

    async def _room_id_from_page(self, unique_id: str, cookies: dict[str, str] | None) -> str:
        response = await self._request(
            "GET",
            self.settings.www_url,
            f"/@{quote(unique_id, safe='._-')}/live",
            {},
            cookies=cookies,
            accept="text/html,application/xhtml+xml,*/*",
        )
        self._check_http(response, "live page")
        html = response.text
        match = _SIGI_RE.search(html)
        if match is None:
            if _looks_blocked(html[:20000]):
                raise UpstreamBlocked("live page: TikTok returned a challenge page")
            raise UpstreamError("live page: no SIGI_STATE")
        state = json.loads(match.group(1))
        live_room = state.get("LiveRoom") if isinstance(state, dict) else None
        if not isinstance(live_room, dict):
            raise UserNotFound(f"no TikTok LIVE user {unique_id!r}")
        user = live_room["liveRoomUserInfo"]["user"]
        if user.get("status") == 4:
            raise UserOffline(f"{unique_id!r} is not LIVE")
        room_id = str(user.get("roomId") or "")
        if not room_id:
            raise UpstreamError("live page: SIGI_STATE has no roomId")
        return room_id

    async def room_id_for(self, unique_id: str, *, cookies: dict[str, str] | None = None) -> str:
        """The LIVE room of `unique_id`: api-live first, the live page's SIGI_STATE second."""
        unique_id = unique_id.lstrip("@")

        async def call() -> str:
            try:
                data = await self._user_room(unique_id, cookies)
            except (UserNotFound, SessionExpired):
                raise
            except UpstreamError as exc:
                # The API is the first to be blocked; the page often still works.
                log.info("api-live/user/room failed (%s); trying the live page", exc.code)
                return await self._room_id_from_page(unique_id, cookies)
            if data["live_state"] is LiveState.OFFLINE:
                raise UserOffline(f"{unique_id!r} is not LIVE")
            room_id = str(data["user"].get("roomId") or "")
            if not room_id:
                if data["live_state"] is LiveState.LIVE:
                    return await self._room_id_from_page(unique_id, cookies)
                raise UserOffline(f"{unique_id!r} has no LIVE room")
            return room_id

        return await self._run("room id", call)

    async def check_alive(self, room_ids: list[str]) -> dict[str, LiveState]:
        """Live state per room id; a room TikTok leaves out of its answer is UNKNOWN."""
        wanted = [str(r) for r in room_ids if str(r).strip()]
        if not wanted:
            return {}

        async def call() -> dict[str, LiveState]:
            params = browser_params(DEFAULT_USER_AGENT)
            params["room_ids"] = ",".join(wanted)
            response = await self._request(
                "GET", self.settings.webcast_url, "/webcast/room/check_alive/", params
            )
            data = self._json(response, "room/check_alive")
            self._webcast_status(data, "room/check_alive")
            entries = data.get("data")
            if not isinstance(entries, list):
                raise UpstreamError("room/check_alive: answer without data")
            result = dict.fromkeys(wanted, LiveState.UNKNOWN)
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                rid = str(entry.get("room_id_str") or entry.get("room_id") or "")
                alive = entry.get("alive")
                if rid in result and isinstance(alive, bool):
                    result[rid] = LiveState.LIVE if alive else LiveState.OFFLINE
            return result

        return await self._run("room/check_alive", call)

    async def room_info(
        self, room_id: str, *, cookies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            params = browser_params(DEFAULT_USER_AGENT)
            params["room_id"] = room_id
            response = await self._request(
                "GET", self.settings.webcast_url, "/webcast/room/info/", params, cookies=cookies
            )
            data = self._json(response, "room/info")
            self._webcast_status(data, "room/info")
            inner = data.get("data")
            if not isinstance(inner, dict):
                raise UpstreamError("room/info: answer without data")
            # TikTok's stub for a room it will not describe: only a prompt, or next to nothing.
            if "prompts" in inner or len(inner) <= 1:
                if "private" in str(inner.get("prompts") or "").lower():
                    raise PrivateRoom("room/info: the LIVE is private")
                raise AgeRestricted("room/info: the LIVE is age-restricted")
            return inner

        return await self._run("room/info", call)

    # -- chat -------------------------------------------------------------------------------

    async def send_chat(
        self, room_id: str, content: str, *, cookies: dict[str, str]
    ) -> dict[str, Any]:
        if not cookies.get("sessionid"):
            raise SessionExpired("room/chat: sending chat needs a TikTok session")

        async def call() -> dict[str, Any]:
            params = browser_params(DEFAULT_USER_AGENT)
            params["user_is_login"] = "true"
            form = {
                "aid": AID,
                "room_id": room_id,
                "content": content,
                "emotes_with_index": "",
                "screen_time": "0",
                "input_type": "0",
            }
            response = await self._request(
                "POST",
                self.settings.webcast_url,
                "/webcast/room/chat/",
                params,
                cookies=cookies,
                form=form,
            )
            data = self._json(response, "room/chat")
            self._webcast_status(data, "room/chat")
            inner = data.get("data")
            return inner if isinstance(inner, dict) else {}

        return await self._run("room/chat", call)

    # -- rankings ---------------------------------------------------------------------------

    async def rankings(
        self, *, region: str, rank_type: str, cookies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A ranklist in Euler's `/webcast/rankings` shape."""

        async def call() -> dict[str, Any]:
            params = browser_params(DEFAULT_USER_AGENT)
            params.update({"region": region, "rank_type": rank_type})
            response = await self._request(
                "GET",
                self.settings.webcast_url,
                "/webcast/ranklist/list/v2/",
                params,
                cookies=cookies,
            )
            data = self._json(response, "ranklist")
            self._webcast_status(data, "ranklist")
            inner = data.get("data")
            if not isinstance(inner, dict):
                raise UpstreamError("ranklist: answer without data")
            return _euler_ranks(inner, rank_type)

        return await self._run("ranklist", call)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _live_state(status: object) -> LiveState:
    if status == 2:
        return LiveState.LIVE
    if status == 4:
        return LiveState.OFFLINE
    return LiveState.UNKNOWN


def _euler_ranks(data: dict[str, Any], rank_type: str) -> dict[str, Any]:
    ranks = []
    for entry in data.get("ranks") or []:
        if not isinstance(entry, dict):
            continue
        user = _dict(entry.get("user"))
        thumb = user.get("avatar_thumb")
        urls = thumb.get("url_list") if isinstance(thumb, dict) else thumb
        ranks.append(
            {
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
        )
    view = _dict(data.get("rank_view"))
    return {
        "ranks": ranks,
        "rank_title": str(view.get("title") or data.get("title") or ""),
        "rank_type": str(data.get("rank_type") or rank_type),
        "resets_at": int(data.get("next_reset_time") or 0),
        "resets_in": int(data.get("countdown") or 0),
    }
