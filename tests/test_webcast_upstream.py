"""The real upstream webcast client against the simulator, over real sockets.

The simulator stands in for webcast.tiktok.com and www.tiktok.com by URL only; the client is
the one the gateway uses against TikTok.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from multidict import CIMultiDict, CIMultiDictProxy
from TikTokLive.client.web.web_settings import WebDefaults
from TikTokLive.client.ws.ws_client import WebcastWSClient
from TikTokLive.client.ws.ws_utils import build_webcast_uri
from TikTokLive.proto import (
    HeartBeatMessage,
    ProtoMessageFetchResult,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastImEnterRoomMessage,
    WebcastPushFrame,
)
from websockets.asyncio.client import connect as ws_connect

from livegate.config import Settings
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    RoomNotFound,
    SessionExpired,
    UpstreamBlocked,
    UpstreamEmpty,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UserNotFound,
    UserOffline,
)
from livegate.tiktok.http import Answer, Upstream, make_http_client
from livegate.tiktok.signer import (
    PassThroughSigner,
    SignServerSigner,
    make_signer,
    strip_signature,
)
from livegate.tiktok.webcast import FetchResult, LiveState, WebcastClient
from tests.servers import ServerThread

T = TypeVar("T")
WS_PATH = "/webcast/im/ws_proxy/ws_reuse_supplement/"


# -- fixtures ---------------------------------------------------------------------------------


class Sim:
    def __init__(self, state: SimState, server: ServerThread) -> None:
        self.state = state
        self.server = server
        self.url = server.url
        self.ctl = httpx.Client(base_url=server.url, timeout=10)

    def room(self, unique_id: str, **kw: Any) -> str:
        r = self.ctl.post("/_sim/rooms", json={"unique_id": unique_id, **kw})
        r.raise_for_status()
        return str(r.json()["room_id"])

    def comment(self, room_id: str, unique_id: str, text: str) -> dict[str, Any]:
        r = self.ctl.post(
            f"/_sim/rooms/{room_id}/comments", json={"unique_id": unique_id, "text": text}
        )
        r.raise_for_status()
        return dict(r.json())

    def session(self, unique_id: str) -> dict[str, str]:
        """A logged-in jar for `unique_id`, as the QR login leaves it."""
        acc = self.state.create_account(unique_id)
        sess = self.state.new_session(acc.uid)
        return {
            "sessionid": sess.sessionid,
            "sessionid_ss": sess.sessionid,
            "sid_tt": sess.sessionid,
            "tt-target-idc": acc.idc,
        }

    def ws_log(self, room_id: str) -> list[dict[str, Any]]:
        return list(self.ctl.get(f"/_sim/rooms/{room_id}/ws_log").json())

    def requests(self, path: str) -> list[dict[str, Any]]:
        return list(self.ctl.get("/_sim/requests", params={"path": path}).json())


@pytest.fixture(scope="module")
def own_sim() -> Iterator[Sim]:
    state = SimState()
    server = ServerThread(create_simulator_app(state)).start()
    s = Sim(state, server)
    yield s
    s.ctl.close()
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults(own_sim: Sim) -> Iterator[None]:
    yield
    own_sim.ctl.delete("/_sim/faults")


@pytest.fixture
def settings(own_sim: Sim, tmp_path: Path) -> Settings:
    return Settings(tiktok_url=own_sim.url, data_dir=tmp_path)


@pytest.fixture
async def upstream_http(settings: Settings) -> AsyncIterator[Upstream]:
    async with make_http_client(settings) as client:
        yield client


@pytest.fixture
def client(upstream_http: Upstream, settings: Settings) -> WebcastClient:
    return WebcastClient(upstream_http, settings, PassThroughSigner())


_uniq = iter(range(1, 1_000_000))


def uid(prefix: str) -> str:
    return f"{prefix}_{next(_uniq)}_{int(time.time() * 1000) % 100000}"


async def until(pred: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Async polling with a deadline, so the loop keeps serving our own sockets meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def parse(result: FetchResult) -> ProtoMessageFetchResult:
    return ProtoMessageFetchResult().parse(result.body)


def chats(result: ProtoMessageFetchResult) -> list[WebcastChatMessage]:
    return [
        WebcastChatMessage().parse(m.payload)
        for m in result.messages
        if m.method == "WebcastChatMessage"
    ]


async def fetch_after(
    client: WebcastClient,
    room_id: str,
    prev: ProtoMessageFetchResult,
    cookies: dict[str, str] | None = None,
) -> ProtoMessageFetchResult:
    """The follow-up poll, resuming where `prev` left off."""
    res = await client.fetch(
        room_id, cookies=cookies, cursor=prev.cursor, internal_ext=prev.internal_ext
    )
    return parse(res)


# -- im/fetch ---------------------------------------------------------------------------------


async def test_fetch_returns_the_fetch_result_with_ws_route(
    own_sim: Sim, client: WebcastClient
) -> None:
    streamer, viewer = uid("streamer"), uid("viewer")
    room_id = own_sim.room(streamer)
    own_sim.comment(room_id, viewer, "hello from fetch")

    res = await client.fetch(room_id)

    assert res.room_id == room_id and res.body
    result = parse(res)
    assert result.cursor.startswith("t-") and result.cursor.endswith("_r-1")
    assert result.push_server == f"ws://127.0.0.1:{own_sim.server.port}{WS_PATH}"
    assert result.route_params.get("wrss")
    assert result.is_first and result.need_ack
    assert result.fetch_interval > 0 and result.heartbeat_duration > 0 and result.now > 0
    assert "seq:" in result.internal_ext
    [chat] = chats(result)
    assert chat.content == "hello from fetch"
    assert chat.user.display_id == viewer and chat.user.nickname == viewer and chat.user.id > 0
    assert {"ttwid", "msToken"} <= set(res.set_cookies)
    jar: SimpleCookie = SimpleCookie()
    jar.load(res.x_set_tt_cookie())
    assert {k: m.value for k, m in jar.items()} == res.set_cookies

    [req] = [r for r in own_sim.requests("im/fetch") if r["query"].get("room_id") == room_id]
    q = req["query"]
    expected = {
        "aid": "1988",
        "resp_content_type": "protobuf",
        "did_rule": "3",
        "fetch_rule": "1",
        "last_rtt": "0",
        "live_id": "12",
        "version_code": "180800",
        "webcast_sdk_version": "1.3.0",
        "update_version_code": "1.3.0",
        "cursor": "",
        "internal_ext": "",
        "browser_name": "Mozilla",
    }
    assert {k: q.get(k) for k in expected} == expected
    assert q["browser_version"].startswith("5.0 (")
    assert "user-agent" in req["header_names"] and "referer" in req["header_names"]


async def test_fetch_cursor_gives_only_new_comments(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    own_sim.comment(room_id, uid("v"), "old")
    first = parse(await client.fetch(room_id))
    assert [c.content for c in chats(first)] == ["old"]
    own_sim.comment(room_id, uid("v"), "new")

    second = await fetch_after(client, room_id, first)

    assert not second.is_first
    assert [c.content for c in chats(second)] == ["new"]
    third = await fetch_after(client, room_id, second)
    assert chats(third) == []


async def test_fetch_sends_the_session_jar_as_cookies(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    jar = own_sim.session(uid("viewer"))
    await client.fetch(room_id, cookies=jar)
    [req] = [r for r in own_sim.requests("im/fetch") if r["query"].get("room_id") == room_id]
    assert {"sessionid", "tt-target-idc"} <= set(req["cookie_names"])
    assert req["query"]["user_is_login"] == "true"


async def test_the_shared_client_keeps_no_cookie(own_sim: Sim, tmp_path: Path) -> None:
    """TikTok's Set-Cookie answers must never ride along on another caller's request."""
    # By host name: cookie jars refuse cookies from bare IP addresses, which would hide a leak.
    url = own_sim.url.replace("127.0.0.1", "localhost")
    settings = Settings(tiktok_url=url, data_dir=tmp_path)
    room_id = own_sim.room(uid("streamer"))
    async with make_http_client(settings) as upstream_http:
        client = WebcastClient(upstream_http, settings, PassThroughSigner())
        first = await client.fetch(room_id, cookies=own_sim.session(uid("viewer")))
        assert {"ttwid", "msToken"} <= set(first.set_cookies)  # TikTok did set cookies
        await client.fetch(room_id)
    requests = [r for r in own_sim.requests("im/fetch") if r["query"].get("room_id") == room_id]
    assert len(requests) == 2
    assert requests[1]["cookie_names"] == []
    assert requests[1]["query"]["user_is_login"] == "false"


async def test_control_api_hands_out_a_signed_in_jar(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    r = own_sim.ctl.post("/_sim/sessions", json={"unique_id": uid("scripted")})
    r.raise_for_status()
    jar = r.json()["cookies"]
    assert set(jar) == {"sessionid", "sessionid_ss", "sid_tt", "tt-target-idc"}
    await client.send_chat(room_id, "from a scripted session", cookies=jar)  # needs a session
    with pytest.raises(SessionExpired):
        await client.send_chat(room_id, "x", cookies={**jar, "sessionid": "0" * 32})


async def test_fetch_unknown_and_ended_rooms(own_sim: Sim, client: WebcastClient) -> None:
    with pytest.raises(RoomNotFound):
        await client.fetch("7999999999999999999")

    room_id = own_sim.room(uid("streamer"))
    own_sim.ctl.delete(f"/_sim/rooms/{room_id}").raise_for_status()
    result = parse(await client.fetch(room_id))
    [control] = [m for m in result.messages if m.method == "WebcastControlMessage"]
    assert WebcastControlMessage().parse(control.payload).action == 3  # STREAM_ENDED


async def test_expired_session_is_session_expired(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    name = uid("viewer")
    jar = own_sim.session(name)
    await client.fetch(room_id, cookies=jar)  # fine while the session lives
    acc = own_sim.state.account_by_unique_id(name)
    assert acc is not None
    own_sim.ctl.post(f"/_sim/sessions/{acc.uid}/expire").raise_for_status()

    with pytest.raises(SessionExpired) as exc:
        await client.fetch(room_id, cookies=jar)
    assert jar["sessionid"] not in str(exc.value)
    with pytest.raises(SessionExpired):
        await client.send_chat(room_id, "hi", cookies=jar)


# -- faults -----------------------------------------------------------------------------------


async def test_fault_403_is_blocked(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    own_sim.ctl.post("/_sim/faults", json={"route": "im/fetch", "status": 403, "count": 1})
    with pytest.raises(UpstreamBlocked):
        await client.fetch(room_id)
    assert (await client.fetch(room_id)).body  # the fault was for one request only


async def test_fault_empty_body_is_empty(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    own_sim.ctl.post("/_sim/faults", json={"route": "im/fetch", "empty_body": True, "count": 1})
    with pytest.raises(UpstreamEmpty):
        await client.fetch(room_id)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\x0a\xff\xff\x03abc", "undecodable protobuf"),  # a length running past the end
        (b"\x12\x00\x18\xe8\x07", "no cursor"),  # cursor "" and fetch_interval 1000
        (b"\x10\x05", "undecodable protobuf"),  # cursor as a varint
        (bytes(ProtoMessageFetchResult(fetch_interval=1000)), "no cursor"),
    ],
)
async def test_unusable_fetch_result_is_upstream_error(
    own_sim: Sim, client: WebcastClient, body: bytes, problem: str
) -> None:
    room_id = own_sim.room(uid("streamer"))
    fault = {"route": "im/fetch", "body_hex": body.hex(), "count": 1}
    own_sim.ctl.post("/_sim/faults", json=fault).raise_for_status()
    with pytest.raises(UpstreamError) as exc:
        await client.fetch(room_id)
    assert type(exc.value) is UpstreamError and problem in str(exc.value)


async def test_fault_500_is_upstream_error(own_sim: Sim, client: WebcastClient) -> None:
    own_sim.ctl.post("/_sim/faults", json={"route": "check_alive", "status": 500, "count": 1})
    with pytest.raises(UpstreamError) as exc:
        await client.check_alive(["1"])
    assert type(exc.value) is UpstreamError


async def test_slow_upstream_is_timeout_within_budget(own_sim: Sim, tmp_path: Path) -> None:
    settings = Settings(tiktok_url=own_sim.url, data_dir=tmp_path, upstream_timeout=0.5)
    room_id = own_sim.room(uid("streamer"))
    own_sim.ctl.post("/_sim/faults", json={"route": "im/fetch", "delay_ms": 2000, "count": 1})
    async with make_http_client(settings) as upstream_http:
        client = WebcastClient(upstream_http, settings, PassThroughSigner())
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await client.fetch(room_id)
        assert time.monotonic() - started < 1.5


async def test_unreachable_upstream_is_upstream_error(tmp_path: Path) -> None:
    from tests.servers import free_port

    settings = Settings(tiktok_url=f"http://127.0.0.1:{free_port()}", data_dir=tmp_path)
    async with make_http_client(settings) as upstream_http:
        client = WebcastClient(upstream_http, settings, PassThroughSigner())
        with pytest.raises(UpstreamError):
            await client.fetch("1")
        with pytest.raises(UpstreamError):
            await client.room_id_for("nobody")


async def _serve_raw(answer: bytes | None) -> tuple[asyncio.Server, str]:
    """A TCP peer that reads a request, then sends `answer` (or nothing) and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, UpstreamUnreachable),  # the peer hangs up without an answer
        (b"HTTP/1.1 2x0 Nonsense\r\n\r\n", UpstreamError),
        # A body cut short: the peer's broken promise.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", UpstreamError),
    ],
)
async def test_transport_failures_arrive_as_upstream_errors(
    tmp_path: Path, answer: bytes | None, expected: type[Exception]
) -> None:
    server, url = await _serve_raw(answer)
    settings = Settings(tiktok_url=url, data_dir=tmp_path)
    async with server, make_http_client(settings) as upstream_http:
        with pytest.raises(UpstreamError) as exc:
            await upstream_http.send("GET", f"{url}/webcast/im/fetch/")
        assert isinstance(exc.value, expected), repr(exc.value)
        assert not isinstance(exc.value, UpstreamTimeout)
        client = WebcastClient(upstream_http, settings, PassThroughSigner())
        with pytest.raises(UpstreamError) as failure:
            await client.fetch("1")
        assert type(failure.value) is expected  # a broken answer, not a timeout


async def test_a_gzip_encoded_fetch_result_arrives_decoded(tmp_path: Path) -> None:
    result = ProtoMessageFetchResult(cursor="c1", push_server="wss://push.example/ws/")
    packed = gzip.compress(bytes(result))
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Encoding: gzip\r\nSet-Cookie: ttwid=1%7Cabc; Path=/; HttpOnly\r\n"
        b'Set-Cookie: msToken="q-1"; Path=/\r\nContent-Length: '
        + str(len(packed)).encode()
        + b"\r\n\r\n"
        + packed
    )
    server, url = await _serve_raw(answer)
    settings = Settings(tiktok_url=url, data_dir=tmp_path)
    async with server, make_http_client(settings) as upstream_http:
        fetched = await WebcastClient(upstream_http, settings, PassThroughSigner()).fetch("1")
    assert fetched.body == bytes(result)
    assert fetched.set_cookies == {"ttwid": "1%7Cabc", "msToken": "q-1"}


# -- room id, live state, room info -----------------------------------------------------------


async def test_room_id_for_and_user_room(own_sim: Sim, client: WebcastClient) -> None:
    streamer = uid("streamer")
    room_id = own_sim.room(streamer)

    assert await client.room_id_for(streamer) == room_id
    assert await client.room_id_for("@" + streamer) == room_id
    data = await client.user_room(streamer)
    assert data["user"]["roomId"] == room_id and data["user"]["uniqueId"] == streamer
    assert data["liveRoom"]["status"] == 2 and data["live_state"] is LiveState.LIVE

    with pytest.raises(UserNotFound):
        await client.room_id_for(uid("ghost"))
    with pytest.raises(UserNotFound):
        await client.user_room(uid("ghost"))

    own_sim.ctl.delete(f"/_sim/rooms/{room_id}").raise_for_status()
    assert (await client.user_room(streamer))["live_state"] is LiveState.OFFLINE
    with pytest.raises(UserOffline):
        await client.room_id_for(streamer)


async def test_room_id_for_falls_back_to_the_live_page(own_sim: Sim, client: WebcastClient) -> None:
    streamer = uid("streamer")
    room_id = own_sim.room(streamer)
    own_sim.ctl.post(
        "/_sim/faults", json={"route": "api-live/user/room", "status": 403, "count": 1}
    )
    assert await client.room_id_for(streamer) == room_id
    assert any(r["path"] == f"/@{streamer}/live" for r in own_sim.requests("/live"))

    # Both paths blocked: the client says so rather than guessing.
    own_sim.ctl.post(
        "/_sim/faults", json={"route": "api-live/user/room", "status": 403, "count": 1}
    )
    own_sim.ctl.post("/_sim/faults", json={"route": f"@{streamer}/live", "status": 403, "count": 1})
    with pytest.raises(UpstreamBlocked):
        await client.room_id_for(streamer)


async def test_live_page_parses_with_tiktoklive(own_sim: Sim) -> None:
    from TikTokLive.client.web.routes.fetch_room_id_live_html import FetchRoomIdLiveHTMLRoute

    streamer = uid("streamer")
    room_id = own_sim.room(streamer)
    page = own_sim.ctl.get(f"/@{streamer}/live").text
    assert FetchRoomIdLiveHTMLRoute.parse_room_id(page) == room_id


async def test_check_alive(own_sim: Sim, client: WebcastClient) -> None:
    live = own_sim.room(uid("streamer"))
    ended = own_sim.room(uid("streamer"))
    own_sim.ctl.delete(f"/_sim/rooms/{ended}").raise_for_status()
    unknown = "7999999999999999998"

    states = await client.check_alive([live, ended, unknown])

    assert states == {live: LiveState.LIVE, ended: LiveState.OFFLINE, unknown: LiveState.UNKNOWN}
    [req] = [r for r in own_sim.requests("check_alive") if live in r["query"].get("room_ids", "")]
    assert req["query"]["room_ids"] == f"{live},{ended},{unknown}" and req["query"]["aid"] == "1988"
    assert await client.check_alive([]) == {}


async def test_room_info(own_sim: Sim, client: WebcastClient) -> None:
    streamer = uid("streamer")
    room_id = own_sim.room(streamer)
    info = await client.room_info(room_id)
    assert info["status"] == 2 and info["id_str"] == room_id
    assert info["owner"]["display_id"] == streamer and info["owner"]["id_str"]
    assert "stats" in info and "stream_url" in info and info["title"]

    with pytest.raises(RoomNotFound):
        await client.room_info("7999999999999999997")


async def test_room_info_age_restricted(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"), age_restricted=True)
    with pytest.raises(AgeRestricted):
        await client.room_info(room_id)
    with pytest.raises(AgeRestricted):
        await client.fetch(room_id)

    jar = own_sim.session(uid("adult"))
    info = await client.room_info(room_id, cookies=jar)
    assert info["id_str"] == room_id
    assert parse(await client.fetch(room_id, cookies=jar)).cursor


async def test_room_info_private(own_sim: Sim, client: WebcastClient) -> None:
    streamer = uid("streamer")
    room_id = own_sim.room(streamer, private=True)
    with pytest.raises(PrivateRoom):
        await client.room_info(room_id)
    with pytest.raises(PrivateRoom):
        await client.room_info(room_id, cookies=own_sim.session(uid("stranger")))
    assert (await client.room_info(room_id, cookies=own_sim.session(streamer)))["id_str"] == room_id


# -- chat, rankings ---------------------------------------------------------------------------


async def test_send_chat_reaches_the_next_fetch(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    chatter = uid("chatter")
    jar = own_sim.session(chatter)
    first = parse(await client.fetch(room_id, cookies=jar))

    sent = await client.send_chat(room_id, "hi from livegate", cookies=jar)

    assert sent["content"] == "hi from livegate"
    assert sent["user"]["display_id"] == chatter
    [chat] = chats(await fetch_after(client, room_id, first, jar))
    assert chat.content == "hi from livegate" and chat.user.display_id == chatter
    [req] = [r for r in own_sim.requests("room/chat") if r["method"] == "POST"][-1:]
    assert "sessionid" in req["cookie_names"] and req["query"]["aid"] == "1988"


async def test_send_chat_needs_a_session(own_sim: Sim, client: WebcastClient) -> None:
    room_id = own_sim.room(uid("streamer"))
    with pytest.raises(SessionExpired):
        await client.send_chat(room_id, "hi", cookies={})
    # A jar TikTok does not know: TikTok's logged-out answer.
    with pytest.raises(SessionExpired):
        await client.send_chat(room_id, "hi", cookies={"sessionid": "0" * 32})


async def test_rankings_in_eulers_shape(own_sim: Sim, client: WebcastClient) -> None:
    streamer = uid("streamer")
    room_id = own_sim.room(streamer)
    for i in range(30):
        own_sim.comment(room_id, uid("fan"), f"c{i}")

    ranks = await client.rankings(region="US", rank_type="DAILY_RANK")

    assert set(ranks) == {"ranks", "rank_title", "rank_type", "resets_at", "resets_in"}
    assert ranks["rank_type"] == "DAILY_RANK" and ranks["resets_in"] > 0
    top = ranks["ranks"][0]
    assert top["rank"] == 1 and top["diamonds"] >= 3000
    assert set(top["user"]) == {"nickname", "numeric_id", "unique_id", "avatar_thumb"}
    assert any(r["user"]["unique_id"] == streamer for r in ranks["ranks"])


# -- the IM WebSocket -------------------------------------------------------------------------


def ws_uri(result: ProtoMessageFetchResult, room_id: str) -> str:
    """The WebSocket URL exactly as TikTokLive 7.0.1 builds it from a fetch result."""
    return build_webcast_uri(
        initial_webcast_response=result,
        base_uri_params={**WebDefaults.ws_client_params, "room_id": room_id, "compress": "gzip"},
        base_uri_append_str=WebDefaults.ws_client_params_append_str,
    )


def ws_cookie(jar: dict[str, str]) -> str:
    return " ".join(f"{k}={v};" for k, v in jar.items())


async def recv_bytes(ws: Any) -> bytes:
    data = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(data, bytes)
    return data


def frame_result(data: bytes) -> tuple[WebcastPushFrame, ProtoMessageFetchResult]:
    frame = WebcastPushFrame().parse(data)
    payload = frame.payload
    if any(h.key == "compress_type" and h.value == "gzip" for h in frame.headers):
        payload = gzip.decompress(payload)
    return frame, ProtoMessageFetchResult().parse(payload)


async def test_websocket_pushes_comments_and_records_client_frames(
    own_sim: Sim, client: WebcastClient
) -> None:
    room_id = own_sim.room(uid("streamer"))
    res = await client.fetch(room_id)
    result = parse(res)
    jar = {"tt-target-idc": "useast1a", **res.set_cookies}

    async with ws_connect(
        ws_uri(result, room_id),
        subprotocols=[websockets.Subprotocol("echo-protocol")],
        additional_headers={"Cookie": ws_cookie(jar), "User-Agent": "Mozilla/5.0 test"},
        ping_interval=None,
    ) as ws:
        assert ws.subprotocol == "echo-protocol"
        assert ws.response is not None
        assert ws.response.headers["Handshake-Options"].startswith("ping-interval=")

        await ws.send(
            bytes(
                WebcastPushFrame(
                    payload_type="im_enter_room",
                    payload_encoding="pb",
                    payload=bytes(WebcastImEnterRoomMessage(room_id=int(room_id), live_id=12)),
                )
            )
        )
        await ws.send(
            bytes(
                WebcastPushFrame(
                    payload_type="hb",
                    payload_encoding="pb",
                    payload=bytes(HeartBeatMessage(room_id=int(room_id), send_packet_seq_id=1)),
                )
            )
        )
        viewer = uid("viewer")
        own_sim.comment(room_id, viewer, "hello over ws")

        frame, pushed = frame_result(await recv_bytes(ws))
        assert frame.payload_type == "msg"
        assert any(h.key == "compress_type" and h.value == "gzip" for h in frame.headers)
        [chat] = chats(pushed)
        assert chat.content == "hello over ws" and chat.user.display_id == viewer
        assert pushed.need_ack and pushed.internal_ext

        await ws.send(
            bytes(
                WebcastPushFrame(
                    payload_type="ack",
                    payload_encoding="pb",
                    log_id=frame.log_id,
                    payload=pushed.internal_ext.encode(),
                )
            )
        )

        def log_with_ack() -> list[dict[str, Any]]:
            lg = own_sim.ws_log(room_id)
            return lg if any(e["type"] == "ack" for e in lg) else []

        log = await until(log_with_ack, what="ack in ws_log")
        types = [e["type"] for e in log]
        assert types[0] == "connect" and {"im_enter_room", "hb", "ack"} <= set(types)
        enter = next(e for e in log if e["type"] == "im_enter_room")
        assert enter["room_id"] == room_id
        assert next(e for e in log if e["type"] == "hb")["send_packet_seq_id"] == 1
        ack = next(e for e in log if e["type"] == "ack")
        assert ack["log_id"] == frame.log_id and ack["payload"] == pushed.internal_ext
        connect = log[0]
        assert {"wrss", "room_id", "compress", "identity", "live_id"} <= set(connect["query_keys"])
        assert "ttwid" in connect["cookie_names"]

        # The stream ends: a STREAM_ENDED control message, then a normal close.
        own_sim.ctl.delete(f"/_sim/rooms/{room_id}").raise_for_status()
        _, last = frame_result(await recv_bytes(ws))
        [control] = [m for m in last.messages if m.method == "WebcastControlMessage"]
        assert WebcastControlMessage().parse(control.payload).action == 3
        with pytest.raises(websockets.ConnectionClosedOK):
            await recv_bytes(ws)


async def test_websocket_after_session_fetch_needs_the_sessionid(
    own_sim: Sim, client: WebcastClient
) -> None:
    room_id = own_sim.room(uid("streamer"))
    jar = own_sim.session(uid("viewer"))
    res = await client.fetch(room_id, cookies=jar)
    uri = ws_uri(parse(res), room_id)
    anonymous = {"tt-target-idc": "useast1a", **res.set_cookies}

    with pytest.raises(websockets.InvalidStatus) as exc:
        async with ws_connect(
            uri,
            subprotocols=[websockets.Subprotocol("echo-protocol")],
            additional_headers={"Cookie": ws_cookie(anonymous)},
        ):
            pass
    assert exc.value.response.status_code == 200
    assert exc.value.response.headers["handshake-msg"] == "illegal secret key"
    assert exc.value.response.headers["handshake-status"] == "415"
    assert any(e["type"] == "rejected" for e in own_sim.ws_log(room_id))

    async with ws_connect(
        uri,
        subprotocols=[websockets.Subprotocol("echo-protocol")],
        additional_headers={"Cookie": ws_cookie({**jar, **res.set_cookies})},
    ) as ws:
        assert ws.subprotocol == "echo-protocol"
    assert any(e["type"] == "connect" and e["with_session"] for e in own_sim.ws_log(room_id))


async def test_websocket_unknown_wrss_is_refused(own_sim: Sim) -> None:
    uri = f"ws://127.0.0.1:{own_sim.server.port}{WS_PATH}?wrss=nope&room_id=1"
    with pytest.raises(websockets.InvalidStatus) as exc:
        async with ws_connect(uri, subprotocols=[websockets.Subprotocol("echo-protocol")]):
            pass
    assert exc.value.response.status_code == 200
    assert exc.value.response.headers["handshake-msg"] == "illegal wrss"


async def test_tiktoklive_ws_client_talks_to_the_simulator(
    own_sim: Sim, client: WebcastClient
) -> None:
    """TikTokLive's own WebSocket client, unmodified, over the simulator's push server."""
    own_sim.ctl.post("/_sim/webcast", json={"ping_interval": 0.2})
    try:
        room_id = own_sim.room(uid("streamer"))
        own_sim.comment(room_id, uid("viewer"), "hello from fetch")
        res = await client.fetch(room_id)
        cookies = httpx.Cookies({"tt-target-idc": "useast1a", **res.set_cookies})
        ws_client = WebcastWSClient()
        seen: list[str] = []

        async def consume() -> None:
            async for result in ws_client.connect(
                room_id=int(room_id),
                cookies=cookies,
                user_agent="Mozilla/5.0 test",
                initial_webcast_response=parse(res),
            ):
                seen.extend(c.content for c in chats(result))
                if "hello over ws" in seen:
                    await until(
                        lambda: sum(e["type"] == "hb" for e in own_sim.ws_log(room_id)) >= 2,
                        what="two heartbeats",
                    )
                    await ws_client.disconnect()

        task = asyncio.create_task(consume())
        await until(lambda: "hello from fetch" in seen, what="the fetched comment")
        await until(
            lambda: any(e["type"] == "im_enter_room" for e in own_sim.ws_log(room_id)),
            what="im_enter_room",
        )
        own_sim.comment(room_id, uid("viewer"), "hello over ws")
        await asyncio.wait_for(task, 10)

        types = [e["type"] for e in own_sim.ws_log(room_id)]
        assert {"im_enter_room", "hb", "ack"} <= set(types)
    finally:
        own_sim.ctl.post("/_sim/webcast", json={"ping_interval": 10})


# -- signers ----------------------------------------------------------------------------------


class FakeSignServer:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.mode = "ok"
        app = FastAPI()

        @app.post("/webcast/sign_url")
        async def sign_url(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append(
                {
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            if self.mode == "forbidden":
                return JSONResponse({"code": 403, "message": "premium only"}, status_code=403)
            if self.mode == "broken":
                return JSONResponse({"code": 500, "message": "boom"}, status_code=500)
            if self.mode == "slow":
                await asyncio.sleep(2)
            if self.mode == "elsewhere":
                body["url"] = "http://evil.example/collect?x=1"
            sep = "&" if "?" in body["url"] else "?"
            return JSONResponse(
                {
                    "code": 200,
                    "message": "ok",
                    "response": {
                        "signed_url": body["url"]
                        + sep
                        + "msToken=signedms&X-Bogus=DFSz&X-Gnarly=g1",
                        "user_agent": body["user_agent"],
                        "browser_name": "Mozilla",
                        "browser_version": body["user_agent"].partition("/")[2],
                        "tokens": {"msToken": "signedms", "X-Bogus": "DFSz"},
                        "request_headers": {"x-tt-params": "opaque"},
                        "cookies": [{"name": "msToken", "value": "signedms"}],
                    },
                }
            )

        self.server = ServerThread(app)


@pytest.fixture(scope="module")
def sign_server() -> Iterator[FakeSignServer]:
    fake = FakeSignServer()
    fake.server.start()
    yield fake
    fake.server.stop()


async def test_sign_server_signer_signs_the_fetch(
    own_sim: Sim, sign_server: FakeSignServer, tmp_path: Path
) -> None:
    sign_server.mode = "ok"
    settings = Settings(
        tiktok_url=own_sim.url,
        data_dir=tmp_path,
        signer_url=sign_server.server.url,
        signer_api_key="k-1",
    )
    room_id = own_sim.room(uid("streamer"))
    jar = own_sim.session(uid("viewer"))
    async with make_http_client(settings) as upstream_http:
        signer = make_signer(settings, upstream_http)
        assert isinstance(signer, SignServerSigner)
        client = WebcastClient(upstream_http, settings, signer)
        sign_server.calls.clear()
        res = await client.fetch(room_id, cookies=jar)
    assert parse(res).cursor

    [call] = sign_server.calls
    assert call["query"] == {"client": "ttlive-other"}
    assert call["headers"]["x-api-key"] == "k-1"
    body = call["body"]
    assert body["method"] == "GET" and body["type"] == "fetch"
    assert (
        body["url"].startswith(f"{own_sim.url}/webcast/im/fetch/?")
        and f"room_id={room_id}" in body["url"]
    )
    assert "msToken" not in body["url"] and "X-Bogus" not in body["url"]
    assert body["user_agent"].startswith("Mozilla/5.0")
    assert body["tt_target_idc"] == jar["tt-target-idc"]
    assert "session_id" not in body  # the session never leaves livegate by default
    assert "payload" not in body

    [req] = [r for r in own_sim.requests("im/fetch") if r["query"].get("room_id") == room_id]
    assert req["query"]["msToken"] == "signedms" and req["query"]["X-Bogus"] == "DFSz"
    assert "x-tt-params" in req["header_names"]
    assert {"msToken", "sessionid"} <= set(req["cookie_names"])


async def test_sign_server_errors(sign_server: FakeSignServer) -> None:
    async with Upstream(Settings()) as upstream_http:
        signer = SignServerSigner(upstream_http, sign_server.server.url, "k", timeout=0.5)
        sign_server.mode = "forbidden"
        with pytest.raises(UpstreamBlocked):
            await signer.sign("https://webcast.tiktok.com/x?a=1", user_agent="Mozilla/5.0")
        sign_server.mode = "broken"
        with pytest.raises(UpstreamError):
            await signer.sign("https://webcast.tiktok.com/x?a=1", user_agent="Mozilla/5.0")
        sign_server.mode = "elsewhere"
        with pytest.raises(UpstreamError):
            await signer.sign("https://webcast.tiktok.com/x?a=1", user_agent="Mozilla/5.0")
        sign_server.mode = "slow"
        with pytest.raises(UpstreamTimeout):
            await signer.sign("https://webcast.tiktok.com/x?a=1", user_agent="Mozilla/5.0")
    sign_server.mode = "ok"


async def test_chat_payload_goes_to_the_signer(
    own_sim: Sim, sign_server: FakeSignServer, tmp_path: Path
) -> None:
    sign_server.mode = "ok"
    room_id = own_sim.room(uid("streamer"))
    jar = own_sim.session(uid("chatter"))
    settings = Settings(tiktok_url=own_sim.url, data_dir=tmp_path)
    async with make_http_client(settings) as upstream_http:
        signer = SignServerSigner(upstream_http, sign_server.server.url)
        sign_server.calls.clear()
        await WebcastClient(upstream_http, settings, signer).send_chat(
            room_id, "signed hi", cookies=jar
        )
    [call] = sign_server.calls
    assert call["body"]["method"] == "POST"
    assert "content=signed+hi" in call["body"]["payload"]
    assert "x-api-key" not in call["headers"]


def test_make_signer_and_strip_signature(tmp_path: Path) -> None:
    upstream_http = Upstream(Settings(data_dir=tmp_path))
    assert isinstance(make_signer(Settings(data_dir=tmp_path), upstream_http), PassThroughSigner)
    signer = make_signer(Settings(data_dir=tmp_path, signer_url="http://s:1/"), upstream_http)
    assert isinstance(signer, SignServerSigner) and signer.base_url == "http://s:1"
    assert (
        strip_signature("https://h/p?a=1&msToken=x&X-Bogus=y&b=2&X-Gnarly=z")
        == "https://h/p?a=1&b=2"
    )
    assert strip_signature("https://h/p?msToken=x") == "https://h/p"


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/html; charset=ISO-8859-1", "café"),
        ('text/plain; Charset="latin-1"', "café"),
        ("application/json", "caf\ufffd"),  # UTF-8 by default
        ("text/html; charset=no-such-codec", "caf\ufffd"),
    ],
)
def test_an_upstream_answer_decodes_with_its_charset(content_type: str, text: str) -> None:
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": content_type}))
    assert Answer(200, headers, "café".encode("latin-1"), "https://h/").text == text
