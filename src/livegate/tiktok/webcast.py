"""The upstream webcast client: TikTok's im/fetch, live checks, room info, chat and rankings.

It knows only base URLs (`settings.webcast_url`, `settings.www_url`); whatever answers there is
TikTok. Every public call finishes or fails within `settings.upstream_timeout`, and fails only
with `livegate.tiktok.errors` types. Cookie values never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from livegate import metrics
from livegate.config import Settings
from livegate.tiktok import protobuf
from livegate.tiktok.answers import (
    STATUS_DETAIL_USER_NOT_FOUND,
    STATUS_USER_NOT_FOUND,
    LiveState,
    as_dict,
    as_int,
    check_http,
    euler_ranks,
    json_body,
    json_or_none,
    live_state,
    looks_blocked,
    set_cookies,
    webcast_data,
)
from livegate.tiktok.browser import AID, browser_params
from livegate.tiktok.cookies import cookie_header
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    SessionExpired,
    UpstreamBlocked,
    UpstreamEmpty,
    UpstreamError,
    UpstreamTimeout,
    UserNotFound,
    UserOffline,
)
from livegate.tiktok.http import ACCEPT_ENCODING, DEFAULT_USER_AGENT, Answer, Upstream
from livegate.tiktok.signer import Signer

__all__ = ["FetchResult", "LiveState", "WebcastClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# im/fetch's parameters that never change, after the browser's and the room's.
_FETCH_CONSTANTS = {
    "resp_content_type": "protobuf",
    "did_rule": "3",
    "fetch_rule": "1",
    "last_rtt": "0",
    "live_id": "12",
    "version_code": "180800",
    "webcast_sdk_version": "1.3.0",
    "update_version_code": "1.3.0",
}
_SIGI_RE = re.compile(r'<script id="SIGI_STATE" type="application/json">(.*?)</script>', re.S)
JSON_ACCEPT = "application/json, text/plain, */*"


@dataclass
class FetchResult:
    body: bytes  # the raw ProtoMessageFetchResult, exactly as TikTok sent it
    set_cookies: dict[str, str]  # what TikTok set (ttwid, msToken...), for X-Set-TT-Cookie
    room_id: str
    top: list[protobuf.Field]  # body's top-level fields, for the push_server splice

    def x_set_tt_cookie(self) -> str:
        """`set_cookies` as the `X-Set-TT-Cookie` value TikTokLive parses with SimpleCookie."""
        return "; ".join(f"{k}={v}" for k, v in self.set_cookies.items())


class WebcastClient:
    def __init__(self, http: Upstream, settings: Settings, signer: Signer) -> None:
        self.http = http
        self.settings = settings
        self.signer = signer

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One overall deadline per public call, and only our error types out of it."""
        with metrics.counting_upstream(what):
            try:
                async with asyncio.timeout(self.settings.upstream_timeout):
                    return await call()
            except UpstreamError:
                raise
            except TimeoutError as exc:
                raise UpstreamTimeout(f"{what}: TikTok did not answer in time") from exc
            except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
                raise UpstreamError(f"{what}: unusable answer ({type(exc).__name__})") from exc

    async def _request(
        self,
        method: str,
        url: str,
        params: dict[str, str],
        *,
        cookies: dict[str, str] | None = None,
        user_agent: str | None = None,
        form: dict[str, str] | None = None,
        accept: str = JSON_ACCEPT,
    ) -> Answer:
        """`method url?params`, signed, with the caller's cookies and a browser's headers."""
        jar = dict(cookies or {})
        payload = urlencode(form) if form is not None else None
        signed = await self.signer.sign(
            f"{url}?{urlencode(params)}",
            method=method,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            cookies=jar,
            payload=payload,
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
        if payload is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        return await self.http.send(method, signed.url, headers=headers, body=payload)

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
        params = browser_params(ua)
        params["user_is_login"] = "true" if cookies and cookies.get("sessionid") else "false"
        params.update(room_id=room_id, cursor=cursor, internal_ext=internal_ext)
        params.update(_FETCH_CONSTANTS)
        if client_enter:
            params["client_enter"] = "1"

        async def call() -> FetchResult:
            response = await self._request(
                "GET",
                f"{self.settings.webcast_url}/webcast/im/fetch/",
                params,
                cookies=cookies,
                user_agent=ua,
                accept="application/protobuf, application/json, */*",
            )
            top = _fetch_result_fields(response)
            return FetchResult(response.body, set_cookies(response), room_id, top)

        return await self._run("im/fetch", call)

    # -- room id / live state ---------------------------------------------------------------

    async def _user_room(self, unique_id: str, cookies: dict[str, str] | None) -> dict[str, Any]:
        params = browser_params(DEFAULT_USER_AGENT)
        params.update({"uniqueId": unique_id, "sourceType": "54"})
        url = f"{self.settings.www_url}/api-live/user/room/"
        data = json_body(
            await self._request("GET", url, params, cookies=cookies), "api-live/user/room"
        )
        if data.get("message") == "user_not_found" or data.get("statusCode") == (
            STATUS_USER_NOT_FOUND
        ):
            # TikTok says this of accounts that exist but are not LIVE too.
            return await self._not_live(unique_id, cookies)
        if data.get("statusCode") not in (0, None):
            raise UpstreamError(f"api-live/user/room: statusCode {data.get('statusCode')}")
        inner = data.get("data")
        if not isinstance(inner, dict) or not isinstance(inner.get("user"), dict):
            raise UpstreamError("api-live/user/room: answer without user data")
        room = as_dict(inner.get("liveRoom"))
        return {**inner, "live_state": live_state(room.get("status", inner["user"].get("status")))}

    async def _not_live(self, unique_id: str, cookies: dict[str, str] | None) -> dict[str, Any]:
        """What api-live/user/room would say of `unique_id` if it told "not LIVE" from "no
        such account": the public profile (api/user/detail) decides. UserNotFound when no
        account has that name."""
        user = await self._profile_user(unique_id, cookies)
        room_id = str(user.get("roomId") or "")
        room_id = "" if room_id == "0" else room_id
        # The profile names a room only while one is open; without one the account is offline.
        state = LiveState.UNKNOWN if room_id else LiveState.OFFLINE
        return {"user": {**user, "roomId": room_id}, "liveRoom": {}, "live_state": state}

    async def _profile_user(self, unique_id: str, cookies: dict[str, str] | None) -> dict[str, Any]:
        params = {**browser_params(DEFAULT_USER_AGENT), "uniqueId": unique_id, "secUid": ""}
        url = f"{self.settings.www_url}/api/user/detail/"
        data = json_body(
            await self._request("GET", url, params, cookies=cookies), "api/user/detail"
        )
        status = as_int(data.get("statusCode", data.get("status_code")))
        user = as_dict(data.get("userInfo")).get("user")
        if status == STATUS_DETAIL_USER_NOT_FOUND:
            raise UserNotFound(f"no TikTok user {unique_id!r}")
        if status not in (0, None) or not isinstance(user, dict) or not user.get("id"):
            raise UpstreamError(f"api/user/detail: statusCode {status}")
        return user

    async def user_room(
        self, unique_id: str, *, cookies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """api-live/user/room's `data` (`user`, `liveRoom`) plus `live_state`: a LiveState."""
        return await self._run("api-live/user/room", lambda: self._user_room(unique_id, cookies))

    async def _room_id_from_page(self, unique_id: str, cookies: dict[str, str] | None) -> str:
        response = await self._request(
            "GET",
            f"{self.settings.www_url}/@{quote(unique_id, safe='._-')}/live",
            {},
            cookies=cookies,
            accept="text/html,application/xhtml+xml,*/*",
        )
        check_http(response, "live page")
        return _room_id_in_page(response.text, unique_id)

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
            url = f"{self.settings.webcast_url}/webcast/room/check_alive/"
            entries = webcast_data(await self._request("GET", url, params), "room/check_alive")
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
            params = {**browser_params(DEFAULT_USER_AGENT), "room_id": room_id}
            url = f"{self.settings.webcast_url}/webcast/room/info/"
            response = await self._request("GET", url, params, cookies=cookies)
            inner = webcast_data(response, "room/info")
            if not isinstance(inner, dict):
                raise UpstreamError("room/info: answer without data")
            # TikTok's stub for a room it will not describe: only a prompt, or next to nothing.
            if "prompts" in inner or len(inner) <= 1:
                if "private" in str(inner.get("prompts") or "").lower():
                    raise PrivateRoom("room/info: the LIVE is private")
                raise AgeRestricted("room/info: the LIVE is age-restricted")
            return inner

        return await self._run("room/info", call)

    # -- chat and rankings ------------------------------------------------------------------

    async def send_chat(
        self, room_id: str, content: str, *, cookies: dict[str, str]
    ) -> dict[str, Any]:
        if not cookies.get("sessionid"):
            raise SessionExpired("room/chat: sending chat needs a TikTok session")

        async def call() -> dict[str, Any]:
            params = {**browser_params(DEFAULT_USER_AGENT), "user_is_login": "true"}
            form = {
                "aid": AID,
                "room_id": room_id,
                "content": content,
                "emotes_with_index": "",
                "screen_time": "0",
                "input_type": "0",
            }
            url = f"{self.settings.webcast_url}/webcast/room/chat/"
            response = await self._request("POST", url, params, cookies=cookies, form=form)
            return as_dict(webcast_data(response, "room/chat"))

        return await self._run("room/chat", call)

    async def rankings(
        self, *, region: str, rank_type: str, cookies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A ranklist in Euler's `/webcast/rankings` shape."""

        async def call() -> dict[str, Any]:
            params = browser_params(DEFAULT_USER_AGENT)
            params.update({"region": region, "rank_type": rank_type})
            url = f"{self.settings.webcast_url}/webcast/ranklist/list/v2/"
            response = await self._request("GET", url, params, cookies=cookies)
            inner = webcast_data(response, "ranklist")
            if not isinstance(inner, dict):
                raise UpstreamError("ranklist: answer without data")
            return euler_ranks(inner, rank_type)

        return await self._run("ranklist", call)


def _fetch_result_fields(response: Answer) -> list[protobuf.Field]:
    """The top-level fields of im/fetch's protobuf answer, or the error its body says."""
    check_http(response, "im/fetch")
    body = response.body
    if not body:
        raise UpstreamEmpty("im/fetch: TikTok returned an empty body")
    ctype = response.headers.get("content-type") or ""
    # '{' (field 15, start-group) and '<' (field 7, end-group) never begin a valid
    # ProtoMessageFetchResult, so these are JSON or HTML whatever the header says.
    if "json" in ctype or body[:1] == b"{":
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise UpstreamError("im/fetch: malformed JSON answer")
        webcast_data(response, "im/fetch")
        raise UpstreamError("im/fetch: JSON instead of protobuf")
    if "html" in ctype or body[:256].lstrip()[:1] == b"<":
        if looks_blocked(response.text[:4000]):
            raise UpstreamBlocked("im/fetch: TikTok returned a challenge page")
        raise UpstreamError("im/fetch: HTML instead of protobuf")
    try:
        return protobuf.fetch_result_fields(body)
    except ValueError as exc:
        raise UpstreamError(f"im/fetch: {exc}") from exc


def _room_id_in_page(html: str, unique_id: str) -> str:
    """The room id in a live page's SIGI_STATE."""
    match = _SIGI_RE.search(html)
    if match is None:
        if looks_blocked(html[:20000]):
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
