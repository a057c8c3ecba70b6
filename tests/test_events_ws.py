"""`GET /webcast/events` (WebSocket) with a Python `websockets` client: the room info first,
then the room's events in order, as binary push frames or JSON; one upstream connection per
room and credential; a dropped push socket resumed without gap or duplicate; the close codes;
an age-restricted room with a user's token and not anonymously; revocation closes with 4401."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from livegate.config import Settings
from livegate.db.engine import Database
from tests.events_helpers import (
    binary_chats,
    chat_texts,
    closed_with,
    first_json,
    json_events,
    open_events,
    push_connects,
    sim_room,
)
from tests.oauth_helpers import register, revoke
from tests.servers import ServerThread, wait_for
from tests.webcast_helpers import (
    User,
    add_comment,
    api_key_for,
    extra_gateway,
    new_room,
    new_user,
)


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def api_key(database: Database) -> str:
    return api_key_for(database, register(database))


def test_json_with_a_token_room_info_then_chat_in_order(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = uname("ej")
    room_id = new_room(sim.url, streamer)
    add_comment(sim.url, room_id, uname("fan"), "history")
    with open_events(gateway.url, token=user.access_token, uniqueId=streamer, format="json") as ws:
        info = first_json(ws)
        assert info["timestamp"] > 0
        [room_info] = info["messages"]
        assert room_info["type"] == "roomInfo"
        assert room_info["data"]["id_str"] == room_id
        assert room_info["data"]["owner"]["display_id"] == streamer
        assert chat_texts(json_events(ws, 1)) == ["history"]
        for text in ("one", "two", "three"):
            add_comment(sim.url, room_id, uname("fan"), text)
        events = json_events(ws, 3)
    assert chat_texts(events) == ["one", "two", "three"]
    chat = events[0]["data"]
    assert chat["common"]["method"] == "WebcastChatMessage"
    assert {"user", "content", "common"} <= chat.keys()
    assert chat["user"]["display_id"].startswith("fan")


def test_unbundled_json_sends_one_event_per_frame(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = uname("eu")
    room_id = new_room(sim.url, streamer)
    query = {"uniqueId": streamer, "apiKey": api_key, "format": "json"}
    with open_events(gateway.url, **query, **{"features.bundleEvents": "false"}) as ws:
        info = first_json(ws)
        assert info["type"] == "roomInfo" and info["data"]["id_str"] == room_id
        add_comment(sim.url, room_id, uname("fan"), "single")
        event = first_json(ws)
    assert event["type"] == "WebcastChatMessage" and event["data"]["content"] == "single"


def test_binary_frames_with_an_api_key(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = uname("eb")
    room_id = new_room(sim.url, streamer)
    add_comment(sim.url, room_id, uname("fan"), "from the fetch")
    with open_events(gateway.url, uniqueId=streamer, apiKey=api_key) as ws:
        info = first_json(ws)
        assert info == {"type": "roomInfo", "data": info["data"]}
        assert binary_chats(ws, 1) == ["from the fetch"]
        add_comment(sim.url, room_id, uname("fan"), "over the socket")
        assert binary_chats(ws, 1) == ["over the socket"]
    [connect] = [e for e in sim_room(sim.url, room_id)["ws_log"] if e["type"] == "connect"]
    assert connect["with_session"] is False  # an API key alone: anonymous


def test_three_subscribers_share_one_upstream_connection(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = uname("es")
    room_id = new_room(sim.url, streamer)
    query = {"uniqueId": streamer, "format": "json"}
    sockets = [open_events(gateway.url, token=user.access_token, **query) for _ in range(3)]
    try:
        for ws in sockets:
            assert first_json(ws)["messages"][0]["type"] == "roomInfo"
        add_comment(sim.url, room_id, uname("fan"), "for all three")
        for ws in sockets:
            assert chat_texts(json_events(ws, 1)) == ["for all three"]
        assert sim_room(sim.url, room_id)["ws_connections"] == 1
        assert push_connects(sim.url, room_id) == 1
    finally:
        for ws in sockets:
            ws.close()
    # The last one to leave closes it.
    wait_for(lambda: sim_room(sim.url, room_id)["ws_connections"] == 0, what="upstream closed")


def test_a_dropped_push_connection_is_resumed_without_gap_or_duplicate(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = uname("ed")
    room_id = new_room(sim.url, streamer)
    with open_events(gateway.url, token=user.access_token, uniqueId=streamer, format="json") as ws:
        first_json(ws)
        add_comment(sim.url, room_id, uname("fan"), "1")
        got = json_events(ws, 1)
        r = httpx.post(f"{sim.url}/_sim/rooms/{room_id}/drop", timeout=10)
        assert r.json() == {"dropped": 1}
        for text in ("2", "3", "4"):
            add_comment(sim.url, room_id, uname("fan"), text)
        got += json_events(ws, 3)
        wait_for(lambda: push_connects(sim.url, room_id) == 2, what="the second push socket")
        add_comment(sim.url, room_id, uname("fan"), "5")
        got += json_events(ws, 1)
    assert chat_texts(got) == ["1", "2", "3", "4", "5"]
    ids = [e["data"]["common"]["msg_id"] for e in got]
    assert len(ids) == len(set(ids))


def test_the_stream_end_closes_with_4005(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = uname("ee")
    room_id = new_room(sim.url, streamer)
    with open_events(gateway.url, uniqueId=streamer, apiKey=api_key, format="json") as ws:
        first_json(ws)
        httpx.delete(f"{sim.url}/_sim/rooms/{room_id}", timeout=10).raise_for_status()
        code, reason = closed_with(ws)
    assert code == 4005 and "ended" in reason


def test_close_codes_for_options_credentials_and_offline_accounts(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    offline = uname("off")
    httpx.post(f"{sim.url}/_sim/accounts", json={"unique_id": offline}, timeout=10)
    cases = [
        ({"uniqueId": offline, "apiKey": api_key}, 4404),
        ({"uniqueId": uname("live"), "apiKey": "lg_ak_unknown"}, 4401),
        ({"uniqueId": uname("live")}, 4401),
        ({"uniqueId": "", "apiKey": api_key}, 4400),
        ({"uniqueId": "x", "apiKey": api_key, "features.bundleEvents": "yes"}, 4400),
        ({"uniqueId": "x", "apiKey": api_key, "features.closeInactiveWebSocketAfter": "5"}, 4400),
        ({"uniqueId": "x", "jwtKey": "not.a.jwt"}, 4401),
    ]
    for query, code in cases:
        with open_events(gateway.url, **query) as ws:
            assert closed_with(ws)[0] == code, query


def test_an_age_restricted_room_needs_a_user_token(
    gateway: ServerThread, sim: ServerThread, user: User, api_key: str
) -> None:
    streamer = uname("ea")
    room_id = new_room(sim.url, streamer, age_restricted=True)
    with open_events(gateway.url, uniqueId=streamer, apiKey=api_key) as ws:
        code, reason = closed_with(ws)
    assert code == 4557 and "age_restricted" in reason
    with open_events(gateway.url, token=user.access_token, uniqueId=streamer, format="json") as ws:
        assert first_json(ws)["messages"][0]["data"]["id_str"] == room_id
        add_comment(sim.url, room_id, uname("fan"), "grown-ups only")
        assert chat_texts(json_events(ws, 1)) == ["grown-ups only"]
    [connect] = [e for e in sim_room(sim.url, room_id)["ws_log"] if e["type"] == "connect"]
    assert connect["with_session"] is True


def test_revoking_the_grant_closes_its_streams_with_4401(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    viewer = new_user(gateway.url, sim.url, database, uname("rv"))
    streamer = uname("er")
    new_room(sim.url, streamer)
    query = {"uniqueId": streamer, "format": "json"}
    sockets = [open_events(gateway.url, token=viewer.access_token, **query) for _ in range(2)]
    try:
        for ws in sockets:
            first_json(ws)
        r = revoke(gateway.url, viewer.app, viewer.refresh_token, "refresh_token")
        assert r.status_code == 200
        for ws in sockets:
            code, reason = closed_with(ws, timeout=5)
            assert code == 4401 and "no longer active" in reason
    finally:
        for ws in sockets:
            ws.close()


def post_event(sim_url: str, room_id: str, **body: object) -> list[dict[str, object]]:
    r = httpx.post(f"{sim_url}/_sim/rooms/{room_id}/events", json=body, timeout=10)
    r.raise_for_status()
    posted: list[dict[str, object]] = r.json()
    return posted


def test_chat_gift_and_like_arrive_in_order_with_a_token(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = uname("eg")
    room_id = new_room(sim.url, streamer)
    with open_events(gateway.url, token=user.access_token, uniqueId=streamer, format="json") as ws:
        first_json(ws)
        posted = post_event(sim.url, room_id, kind="chat", unique_id=uname("fan"), text="hi")
        posted += post_event(sim.url, room_id, kind="gift", unique_id=uname("fan"), repeat_count=3)
        posted += post_event(sim.url, room_id, kind="like", unique_id=uname("fan"), count=5)
        posted += post_event(sim.url, room_id, kind="chat", unique_id=uname("fan"), text="bye")
        events = json_events(ws, len(posted))
    assert [e["type"] for e in events] == [p["type"] for p in posted]
    assert [e["data"]["common"]["msg_id"] for e in events] == [p["msg_id"] for p in posted]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "WebcastChatMessage" and kinds[-1] == "WebcastChatMessage"
    assert "WebcastGiftMessage" in kinds and "WebcastLikeMessage" in kinds
    gifts = [e["data"] for e in events if e["type"] == "WebcastGiftMessage"]
    assert gifts[-1]["repeat_count"] == 3


def test_a_busy_room_arrives_whole_and_in_the_simulators_order(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer = uname("ek")
    room_id = new_room(sim.url, streamer)
    with open_events(gateway.url, uniqueId=streamer, apiKey=api_key, format="json") as ws:
        first_json(ws)
        r = httpx.post(
            f"{sim.url}/_sim/rooms/{room_id}/activity", json={"rate_per_s": 50}, timeout=10
        )
        r.raise_for_status()
        got = json_events(ws, 60)
        httpx.post(
            f"{sim.url}/_sim/rooms/{room_id}/activity", json={"rate_per_s": 0}, timeout=10
        ).raise_for_status()
    log = httpx.get(f"{sim.url}/_sim/rooms/{room_id}/events", timeout=10).json()
    sent = [e["msg_id"] for e in log]
    received = [e["data"]["common"]["msg_id"] for e in got]
    assert received == sent[: len(received)]  # no gap, no duplicate, the room's order
    assert len({e["type"] for e in got}) >= 3


def test_a_plain_get_is_told_to_upgrade(gateway: ServerThread, api_key: str) -> None:
    r = httpx.get(
        f"{gateway.url}/webcast/events", params={"uniqueId": "x", "apiKey": api_key}, timeout=10
    )
    assert r.status_code == 426
    assert r.json()["error"] == "upgrade_required"
    assert r.headers["upgrade"] == "websocket"


def test_open_streams_per_grant_are_limited_with_4429(
    gateway_settings: Settings, sim: ServerThread, database: Database
) -> None:
    server = extra_gateway(gateway_settings, events_max_streams_per_grant=2)
    try:
        viewer = new_user(server.url, sim.url, database, uname("lim"))
        streamer = uname("el")
        new_room(sim.url, streamer)
        query = {"uniqueId": streamer, "format": "json"}
        with (
            open_events(server.url, token=viewer.access_token, **query) as one,
            open_events(server.url, token=viewer.access_token, **query) as two,
        ):
            first_json(one)
            first_json(two)
            with open_events(server.url, token=viewer.access_token, **query) as three:
                code, reason = closed_with(three)
            assert code == 4429 and "grant" in reason

        def opens_again() -> bool:
            # Closed streams give their slots back, once the gateway has seen them close.
            with open_events(server.url, token=viewer.access_token, **query) as again:
                try:
                    return bool(first_json(again)["messages"][0]["type"] == "roomInfo")
                except ConnectionClosed:
                    return False

        wait_for(opens_again, what="a slot given back")
    finally:
        server.stop()


def test_synthetic_presence_announces_a_new_user_before_their_first_event(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    streamer, fan = uname("ep"), uname("fan")
    room_id = new_room(sim.url, streamer)
    query = {"uniqueId": streamer, "apiKey": api_key, "format": "json"}
    with open_events(gateway.url, **query, **{"features.syntheticPresence": "1"}) as ws:
        first_json(ws)
        add_comment(sim.url, room_id, fan, "hello")
        add_comment(sim.url, room_id, fan, "again")
        events = json_events(ws, 3)
    assert [e["type"] for e in events] == [
        "SyntheticJoinMessage",
        "WebcastChatMessage",
        "WebcastChatMessage",
    ]
    record = events[0]["data"]
    assert record["user"]["uniqueId"] == fan
    assert record["firstSeen"] == record["lastSeen"] > 0


def test_a_quiet_stream_closes_with_4006_and_a_busy_one_stays_open(
    gateway: ServerThread, sim: ServerThread, api_key: str
) -> None:
    quiet, busy = uname("eq"), uname("eb")
    new_room(sim.url, quiet)
    busy_room = new_room(sim.url, busy)
    inactive = {"features.closeInactiveWebSocketAfter": "30", "format": "json"}
    with (
        open_events(gateway.url, uniqueId=quiet, apiKey=api_key, **inactive) as idle,
        open_events(gateway.url, uniqueId=busy, apiKey=api_key, **inactive) as live,
    ):
        first_json(idle)
        first_json(live)
        sent = 0
        code = None
        deadline = time.monotonic() + 60
        # The busy room gets a chat every 2 s, read as it comes, until the quiet one closes.
        while code is None:
            assert time.monotonic() < deadline, "the quiet stream stayed open"
            sent += 1
            add_comment(sim.url, busy_room, uname("fan"), f"chat {sent}")
            assert chat_texts(json_events(live, 1)) == [f"chat {sent}"]
            try:
                idle.recv(timeout=2)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                code = exc.rcvd.code
        assert code == 4006
        assert sent >= 10  # 30 s of chats went by
        add_comment(sim.url, busy_room, uname("fan"), "still here")
        assert chat_texts(json_events(live, 1)) == ["still here"]
