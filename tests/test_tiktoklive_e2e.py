"""Unmodified TikTokLive 7.0.1 against livegate (its sign server) and the simulator (TikTok).

TikTokLive is pointed at livegate with `WebDefaults.tiktok_sign_url`, makes no direct TikTok
call (`start(room_id=..., fetch_live_check=False)`), and gets the access token in as
`x-oauth-token` with the `with_headers` workaround from the protocol reference §0. Each
scenario runs in its own event loop; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from TikTokLive import TikTokLiveClient
from TikTokLive.client.errors import SignAPIError, SignatureRateLimitError
from TikTokLive.client.web.web_settings import WebDefaults
from TikTokLive.events import CommentEvent

from livegate.config import Settings
from livegate.db.engine import Database
from tests.oauth_helpers import revoke
from tests.servers import ServerThread
from tests.webcast_helpers import User, add_comment, extra_gateway, fault, new_room, new_user

DEADLINE = 15.0


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def viewer(gateway: ServerThread, sim: ServerThread, database: Database) -> User:
    return new_user(gateway.url, sim.url, database, uname("ttl"))


def make_client(
    gw_url: str, streamer: str, *, token: str | None = None, api_key: str | None = None
) -> TikTokLiveClient:
    WebDefaults.tiktok_sign_url = gw_url
    signer_kwargs: dict[str, Any] = {"sign_api_base": gw_url}
    if api_key:
        signer_kwargs["sign_api_key"] = api_key
    client = TikTokLiveClient(unique_id=streamer, web_kwargs={"signer_kwargs": signer_kwargs})
    if token:
        signer = client.web.signer
        signer._sdk_client = signer.sdk_client.with_headers({"x-oauth-token": token})
    return client


async def _ws_connected(sim_url: str, room_id: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            room = (await http.get(f"{sim_url}/_sim/rooms/{room_id}")).json()
            if room["ws_connections"] >= 1:
                return
            await asyncio.sleep(0.05)


async def _watch(
    gw_url: str, sim_url: str, *, token: str | None = None, api_key: str | None = None
) -> tuple[list[str], dict[str, Any]]:
    streamer = uname("live")
    room_id = new_room(sim_url, streamer)
    add_comment(sim_url, room_id, uname("fan"), "hello from fetch")
    client = make_client(gw_url, streamer, token=token, api_key=api_key)
    texts: list[str] = []
    first, second = asyncio.Event(), asyncio.Event()

    @client.on(CommentEvent)
    async def on_comment(event: CommentEvent) -> None:
        texts.append(event.content)
        (second if event.content == "hello over ws" else first).set()

    task = await client.start(room_id=int(room_id), fetch_live_check=False)
    try:
        await asyncio.wait_for(first.wait(), DEADLINE)
        await asyncio.wait_for(_ws_connected(sim_url, room_id), DEADLINE)
        add_comment(sim_url, room_id, uname("fan"), "hello over ws")
        await asyncio.wait_for(second.wait(), DEADLINE)
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    room = httpx.get(f"{sim_url}/_sim/rooms/{room_id}").json()
    return texts, room


def test_tiktoklive_with_oauth_token_through_the_proxy(
    gateway: ServerThread, sim: ServerThread, viewer: User
) -> None:
    texts, room = asyncio.run(_watch(gateway.url, sim.url, token=viewer.access_token))
    assert texts[:2] == ["hello from fetch", "hello over ws"]
    connects = [e for e in room["ws_log"] if e["type"] == "connect"]
    # The push socket reached TikTok with the user's session, which TikTokLive never had.
    assert connects and connects[-1]["with_session"] and "sessionid" in connects[-1]["cookie_names"]
    kinds = {e["type"] for e in room["ws_log"]}
    assert "im_enter_room" in kinds  # the client's frames went through the relay


def test_tiktoklive_with_api_key_only(
    gateway: ServerThread, sim: ServerThread, viewer: User
) -> None:
    texts, room = asyncio.run(_watch(gateway.url, sim.url, api_key=viewer.api_key))
    assert texts[:2] == ["hello from fetch", "hello over ws"]
    connects = [e for e in room["ws_log"] if e["type"] == "connect"]
    assert connects and not connects[-1]["with_session"]


async def _start_error(gw_url: str, room_id: str, **auth: str) -> BaseException:
    client = make_client(gw_url, "whoever", **auth)
    try:
        task = await asyncio.wait_for(
            client.start(room_id=int(room_id), fetch_live_check=False), DEADLINE
        )
    except Exception as exc:  # the typed error is what we want
        return exc
    await client.disconnect()
    task.cancel()
    raise AssertionError("TikTokLive connected although it should have failed")


@pytest.fixture(scope="module")
def live_room(sim: ServerThread) -> str:
    return new_room(sim.url, uname("errs"))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"status": 403}, "upstream_blocked"),
        ({"empty_body": True}, "upstream_empty"),
        ({"status": 500}, "upstream_error"),
    ],
)
def test_upstream_failures_reach_tiktoklive_as_sign_api_errors(
    gateway: ServerThread,
    sim: ServerThread,
    viewer: User,
    live_room: str,
    spec: dict[str, Any],
    needle: str,
) -> None:
    with fault(sim.url, route="im/fetch", **spec):
        exc = asyncio.run(_start_error(gateway.url, live_room, token=viewer.access_token))
    assert isinstance(exc, SignAPIError), repr(exc)
    assert exc.reason is SignAPIError.ErrorReason.SIGN_NOT_200
    assert needle in str(exc)


@pytest.fixture(scope="module")
def one_connect_a_minute(gateway_settings: Settings) -> Iterator[ServerThread]:
    server = extra_gateway(gateway_settings, rate_limit_connect="1/minute")
    yield server
    server.stop()


def test_livegate_rate_limit_is_signature_rate_limit_error(
    one_connect_a_minute: ServerThread, sim: ServerThread, viewer: User, live_room: str
) -> None:
    ok = httpx.get(
        f"{one_connect_a_minute.url}/webcast/fetch",
        params={"room_id": live_room},
        headers={"x-oauth-token": viewer.access_token},
    )
    assert ok.status_code == 200
    exc = asyncio.run(_start_error(one_connect_a_minute.url, live_room, token=viewer.access_token))
    assert isinstance(exc, SignatureRateLimitError), repr(exc)
    assert exc.reason is SignAPIError.ErrorReason.RATE_LIMIT
    assert exc.retry_after == 0  # RateLimit-Remaining: the remaining quota
    assert exc.reset_time > 0
    assert "connect:token" in str(exc)


def test_revoked_token_stops_working_on_the_next_call(
    gateway: ServerThread, sim: ServerThread, database: Database, live_room: str
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("rev"))
    texts, _ = asyncio.run(_watch(gateway.url, sim.url, token=u.access_token))
    assert "hello from fetch" in texts
    assert revoke(gateway.url, u.app, u.access_token, "access_token").status_code == 200
    exc = asyncio.run(_start_error(gateway.url, live_room, token=u.access_token))
    assert isinstance(exc, SignAPIError) and exc.reason is SignAPIError.ErrorReason.SIGN_NOT_200
    assert "invalid_token" in str(exc)


def test_expired_tiktok_session_is_login_required(
    gateway: ServerThread, sim: ServerThread, database: Database, live_room: str
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("gone"))
    assert httpx.post(f"{sim.url}/_sim/sessions/{u.uid}/expire").status_code == 200
    exc = asyncio.run(_start_error(gateway.url, live_room, token=u.access_token))
    assert isinstance(exc, SignAPIError) and exc.reason is SignAPIError.ErrorReason.SIGN_NOT_200
    assert "login_required" in str(exc)
    # Every call with the grant's token now gets the same answer.
    r = httpx.get(f"{gateway.url}/webcast/rate_limits", headers={"x-oauth-token": u.access_token})
    assert r.status_code == 401 and r.json()["message"] == "login_required"
