"""tiktok-live-connector 2.5.0 (Node) connects through livegate's /webcast/rooms/{id}/connect.

The connector reads `SIGN_API_URL` when its module loads and sends its `signApiKey` as
`x-api-key` and `?apiKey=`; `connect(roomId)` with `fetchRoomInfoOnConnect: false` makes no
direct TikTok call, and the WebSocket goes to whatever push_server the fetch names (the
simulator). Skipped when node or tests/node/node_modules is missing (`make node-deps`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from livegate.db.engine import Database
from tests.node_runner import require_node, run_node
from tests.oauth_helpers import register
from tests.servers import ServerThread
from tests.webcast_helpers import add_comment, api_key_for, new_room

# Skipped only when told to (no Node.js in this environment); missing modules are otherwise a
# failure, so that the compatibility check cannot pass unrun.
pytestmark = pytest.mark.skipif(
    os.environ.get("LIVEGATE_TEST_NO_NODE") == "1",
    reason="LIVEGATE_TEST_NO_NODE=1: this environment has no Node.js",
)


@pytest.fixture(scope="module", autouse=True)
def node_ready() -> None:
    require_node("tiktok-live-connector")


def run_connector(
    env: dict[str, str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 40,
) -> list[dict[str, Any]]:
    return run_node("connector_test.mjs", env, on_event, timeout)


def test_node_connector_receives_a_comment_through_livegate(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    streamer = "node" + secrets.token_hex(4)
    room_id = new_room(sim.url, streamer)
    add_comment(sim.url, room_id, "nodefan" + secrets.token_hex(2), "hello node")
    key = api_key_for(database, register(database))
    httpx.delete(f"{sim.url}/_sim/requests")

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "connected":  # the WebSocket is up: this one arrives over it
            add_comment(sim.url, room_id, "nodefan" + secrets.token_hex(2), "over the socket")

    events = run_connector(
        {
            "SIGN_API_URL": gateway.url,
            "LIVEGATE_API_KEY": key,
            "ROOM_ID": room_id,
            "STREAMER": streamer,
            "WANT_COMMENT": "over the socket",
        },
        on_event,
    )
    assert {"event": "connected", "roomId": room_id} in events, events
    chats = [e["comment"] for e in events if e["event"] == "chat"]
    assert chats == ["hello node", "over the socket"], events
    # It went through the connect route, and livegate fetched from the simulator.
    fetches = httpx.get(f"{sim.url}/_sim/requests", params={"path": "im/fetch"}).json()
    assert any(f["query"].get("room_id") == room_id for f in fetches)


def test_node_connector_sees_livegate_refusals(gateway: ServerThread, sim: ServerThread) -> None:
    room_id = new_room(sim.url, "nodex" + secrets.token_hex(4))
    events = run_connector(
        {
            "SIGN_API_URL": gateway.url,
            "LIVEGATE_API_KEY": "lg_ak_unknown",
            "ROOM_ID": room_id,
            "STREAMER": "whoever",
            "WANT_COMMENT": "never",
        }
    )
    errors = [e for e in events if e["event"] == "error"]
    assert errors and "401" in errors[0]["message"], events
