"""The unmodified `@eulerstream/euler-websocket-sdk@0.0.6` under Node against livegate's
`GET /webcast/events`: `EULER_WS_URL` points the SDK's `createWebSocketUrl` at livegate, `ws` is
the socket. The room info comes first, then a chat posted into the simulated room, decoded by
the SDK's `deserializeWebSocketMessage`; the close codes are the SDK's `ClientCloseCode`."""

from __future__ import annotations

import os
import secrets
from typing import Any

import httpx
import pytest

from livegate.db.engine import Database
from tests.node_runner import require_node, run_node
from tests.oauth_helpers import register
from tests.servers import ServerThread
from tests.webcast_helpers import add_comment, api_key_for, new_room

pytestmark = pytest.mark.skipif(
    os.environ.get("LIVEGATE_TEST_NO_NODE") == "1",
    reason="LIVEGATE_TEST_NO_NODE=1: this environment has no Node.js",
)
SCRIPT = "events_sdk_test.mjs"


@pytest.fixture(scope="module", autouse=True)
def node_ready() -> None:
    require_node("@eulerstream/euler-websocket-sdk")
    require_node("ws")


@pytest.fixture(scope="module")
def api_key(database: Database) -> str:
    return api_key_for(database, register(database))


def sdk_env(gateway: ServerThread, unique_id: str, api_key: str, **extra: str) -> dict[str, str]:
    ws_url = gateway.url.replace("http://", "ws://") + "/webcast/events"
    env = {"EULER_WS_URL": ws_url, "UNIQUE_ID": unique_id, "API_KEY": api_key, **extra}
    return {k: v for k, v in env.items() if v}


def closes(events: list[dict[str, Any]]) -> list[tuple[int, str | None]]:
    return [(e["code"], e["name"]) for e in events if e["event"] == "close"]


def test_the_sdk_gets_room_info_then_a_chat_it_decodes(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = "sdk" + secrets.token_hex(4)
    room_id = new_room(sim.url, streamer)
    fan = "sdkfan" + secrets.token_hex(2)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "roomInfo":  # subscribed: this one arrives over the stream
            add_comment(sim.url, room_id, fan, "hello sdk")

    events = run_node(SCRIPT, sdk_env(gateway, streamer, api_key, WANT_CHAT="hello sdk"), on_event)
    url = next(e["url"] for e in events if e["event"] == "url")
    assert url.startswith(gateway.url.replace("http://", "ws://") + "/webcast/events?")
    assert f"uniqueId={streamer}" in url and "apiKey=KEY" in url
    kinds = [e["event"] for e in events if e["event"] in ("roomInfo", "chat")]
    assert kinds == ["roomInfo", "chat"], events
    assert {"event": "roomInfo", "roomId": room_id} in events
    assert {"event": "chat", "comment": "hello sdk", "user": fan} in events
    assert closes(events) == [(1000, "NORMAL")]


def test_the_sdk_sees_4005_when_the_stream_ends(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = "sdkend" + secrets.token_hex(4)
    room_id = new_room(sim.url, streamer)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "roomInfo":
            httpx.delete(f"{sim.url}/_sim/rooms/{room_id}", timeout=10).raise_for_status()

    events = run_node(SCRIPT, sdk_env(gateway, streamer, api_key), on_event)
    assert closes(events) == [(4005, "STREAM_END")], events


def test_the_sdk_sees_4404_for_an_account_that_is_not_live(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    offline = "sdkoff" + secrets.token_hex(4)
    httpx.post(f"{sim.url}/_sim/accounts", json={"unique_id": offline}, timeout=10)
    events = run_node(SCRIPT, sdk_env(gateway, offline, api_key))
    assert closes(events) == [(4404, "NOT_LIVE")], events


def test_the_sdk_sees_4401_for_a_bad_key(gateway: ServerThread, sim: ServerThread) -> None:
    streamer = "sdkbad" + secrets.token_hex(4)
    new_room(sim.url, streamer)
    events = run_node(SCRIPT, sdk_env(gateway, streamer, "lg_ak_not_a_key"))
    assert closes(events) == [(4401, "INVALID_AUTH")], events


def test_the_sdk_with_a_jwt_key_opens_its_creator_and_gets_4403_for_another(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    creator, other = "sdkjwt" + secrets.token_hex(4), "sdkother" + secrets.token_hex(4)
    room_id = new_room(sim.url, creator)
    new_room(sim.url, other)
    r = httpx.post(
        f"{gateway.url}/webcast/jwt",
        json={"creators": [creator], "max_sockets": 2},
        headers={"X-Api-Key": api_key},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    jwt_key = r.json()["token"]
    events = run_node(SCRIPT, sdk_env(gateway, other, "", JWT_KEY=jwt_key))
    assert closes(events) == [(4403, "NO_PERMISSION")], events

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "roomInfo":
            add_comment(sim.url, room_id, "jwtfan" + secrets.token_hex(2), "hello jwt")

    env = sdk_env(gateway, creator, "", JWT_KEY=jwt_key, WANT_CHAT="hello jwt")
    events = run_node(SCRIPT, env, on_event)
    url = next(e["url"] for e in events if e["event"] == "url")
    assert "jwtKey=KEY" in url and "apiKey" not in url
    assert [e["event"] for e in events if e["event"] in ("roomInfo", "chat")] == [
        "roomInfo",
        "chat",
    ]
    assert closes(events) == [(1000, "NORMAL")]
