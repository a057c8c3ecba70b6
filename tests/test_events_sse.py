"""`GET /webcast/rooms/{unique_id}/events` (Server-Sent Events) over HTTP against the simulator:
the room info, then the room's events in order, each with an id; a reconnect with
Last-Event-ID resumes without loss or duplicate (on PostgreSQL + Redis, on a second gateway
instance too); a Last-Event-ID older than the buffer gets `event: gap`; refusals before the
stream are HTTP errors, endings after it are a last `event: error`; one upstream connection
for SSE and WebSocket subscribers of a room and credential."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from livegate.config import Settings
from livegate.db.engine import Database
from tests.events_helpers import (
    SseReader,
    first_json,
    json_events,
    open_events,
    open_sse,
    push_connects,
    sim_room,
)
from tests.oauth_helpers import register, revoke
from tests.servers import ServerThread, wait_for
from tests.webcast_helpers import User, api_key_for, extra_gateway, new_room, new_user


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def api_key(database: Database) -> str:
    return api_key_for(database, register(database))


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client


def post_event(sim_url: str, room_id: str, **body: object) -> list[dict[str, Any]]:
    r = httpx.post(f"{sim_url}/_sim/rooms/{room_id}/events", json=body, timeout=10)
    r.raise_for_status()
    posted: list[dict[str, Any]] = r.json()
    return posted


def chats(sim_url: str, room_id: str, *texts: str) -> list[dict[str, Any]]:
    posted: list[dict[str, Any]] = []
    for text in texts:
        posted += post_event(sim_url, room_id, kind="chat", unique_id=uname("fan"), text=text)
    return posted


def msg_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [str(b["data"]["data"]["common"]["msg_id"]) for b in blocks]


def posted_ids(posted: list[dict[str, Any]]) -> list[str]:
    return [str(p["msg_id"]) for p in posted]


def order(event_id: str) -> tuple[int, int]:
    ms, n = event_id.split("-")
    return int(ms), int(n)


def room_info(reader: SseReader, room_id: str) -> None:
    block = reader.next()
    assert block["id"] is None and block["event"] == "message"
    assert block["data"]["type"] == "roomInfo"
    assert block["data"]["data"]["id_str"] == room_id


def test_chat_gift_and_like_arrive_in_order_each_with_an_id(
    gateway: ServerThread, sim: ServerThread, user: User, http: httpx.Client
) -> None:
    streamer = uname("sg")
    room_id = new_room(sim.url, streamer)
    bearer = {"Authorization": f"Bearer {user.access_token}"}
    with open_sse(http, gateway.url, f"@{streamer}", headers=bearer) as r:
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["access-control-allow-origin"] == "*"
        reader = SseReader(r)
        room_info(reader, room_id)
        posted = post_event(sim.url, room_id, kind="chat", unique_id=uname("fan"), text="hi")
        posted += post_event(sim.url, room_id, kind="gift", unique_id=uname("fan"), repeat_count=3)
        posted += post_event(sim.url, room_id, kind="like", unique_id=uname("fan"), count=5)
        posted += post_event(sim.url, room_id, kind="chat", unique_id=uname("fan"), text="bye")
        got = reader.events(len(posted))
    assert [b["data"]["type"] for b in got] == [p["type"] for p in posted]
    assert msg_ids(got) == posted_ids(posted)
    ids = [order(b["id"]) for b in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert got[0]["data"]["data"]["content"] == "hi"
    gifts = [b["data"]["data"] for b in got if b["data"]["type"] == "WebcastGiftMessage"]
    assert gifts[-1]["repeat_count"] == 3


def resume_across(
    first: str, second: str, sim: ServerThread, api_key: str, http: httpx.Client, how: str
) -> None:
    """Read two events from `first`, leave, let three more happen, come back to `second` with
    the last id: exactly those three, in order."""
    streamer = uname("sr")
    room_id = new_room(sim.url, streamer)
    with open_sse(http, first, streamer, apiKey=api_key) as r:
        reader = SseReader(r)
        room_info(reader, room_id)
        before = chats(sim.url, room_id, "one", "two")
        got = reader.events(2)
    assert msg_ids(got) == posted_ids(before)
    last_id = got[-1]["id"]
    after = chats(sim.url, room_id, "three", "four", "five")
    if how == "header":
        headers, query = {"Last-Event-ID": last_id}, {"apiKey": api_key}
    else:
        headers, query = {}, {"apiKey": api_key, "lastEventId": last_id}
    with open_sse(http, second, streamer, headers=headers, **query) as r:
        reader = SseReader(r)
        room_info(reader, room_id)
        resumed = reader.events(3)
        later = chats(sim.url, room_id, "six")
        resumed += reader.events(1)
    assert msg_ids(resumed) == posted_ids(after + later)
    assert [b["data"]["data"]["content"] for b in resumed] == ["three", "four", "five", "six"]
    assert all(order(b["id"]) > order(last_id) for b in resumed)


@pytest.mark.parametrize("how", ["header", "query"])
def test_a_reconnect_with_last_event_id_resumes_without_loss_or_duplicate(
    gateway: ServerThread, sim: ServerThread, api_key: str, http: httpx.Client, how: str
) -> None:
    resume_across(gateway.url, gateway.url, sim, api_key, http, how)


def test_a_reconnect_to_another_instance_resumes_from_the_shared_buffer(
    gateway: ServerThread,
    gateway_settings: Settings,
    sim: ServerThread,
    api_key: str,
    http: httpx.Client,
) -> None:
    if not os.environ.get("LIVEGATE_TEST_REDIS_URL"):
        pytest.skip("a fleet shares its resume buffer in Redis: LIVEGATE_TEST_REDIS_URL unset")
    other = extra_gateway(gateway_settings)
    try:
        resume_across(gateway.url, other.url, sim, api_key, http, "header")
    finally:
        other.stop()


def test_a_last_event_id_older_than_the_buffer_gets_a_gap_first(
    gateway_settings: Settings, sim: ServerThread, database: Database, http: httpx.Client
) -> None:
    server = extra_gateway(gateway_settings, events_resume_max_events=3)
    try:
        key = api_key_for(database, register(database))
        streamer = uname("sp")
        room_id = new_room(sim.url, streamer)
        with open_sse(http, server.url, streamer, apiKey=key) as r:
            reader = SseReader(r)
            room_info(reader, room_id)
            posted = chats(sim.url, room_id, *"abcdef")
            got = reader.events(6)
        assert msg_ids(got) == posted_ids(posted)
        with open_sse(http, server.url, streamer, {"Last-Event-ID": got[0]["id"]}, apiKey=key) as r:
            reader = SseReader(r)
            room_info(reader, room_id)
            gap = reader.next()
            assert gap["event"] == "gap"
            assert gap["data"] == {"lastEventId": got[0]["id"], "oldestId": got[3]["id"]}
            assert [b["id"] for b in reader.events(3)] == [b["id"] for b in got[3:]]
    finally:
        server.stop()


def test_a_new_subscriber_gets_the_recent_events_first(
    gateway: ServerThread, sim: ServerThread, api_key: str, http: httpx.Client
) -> None:
    streamer = uname("sn")
    room_id = new_room(sim.url, streamer)
    with open_sse(http, gateway.url, streamer, apiKey=api_key) as first:
        reader = SseReader(first)
        room_info(reader, room_id)
        posted = chats(sim.url, room_id, "early")
        got = reader.events(1)
        with open_sse(http, gateway.url, streamer, apiKey=api_key) as second:
            late = SseReader(second)
            room_info(late, room_id)
            assert [b["id"] for b in late.events(1)] == [got[0]["id"]]
    assert msg_ids(got) == posted_ids(posted)


def test_sse_and_websocket_subscribers_share_one_upstream_connection(
    gateway: ServerThread, sim: ServerThread, user: User, http: httpx.Client
) -> None:
    streamer = uname("ss")
    room_id = new_room(sim.url, streamer)
    bearer = {"Authorization": f"Bearer {user.access_token}"}
    query = {"uniqueId": streamer, "format": "json"}
    with (
        open_sse(http, gateway.url, streamer, headers=bearer) as one,
        open_sse(http, gateway.url, streamer, headers=bearer) as two,
        open_events(gateway.url, token=user.access_token, **query) as ws,
    ):
        readers = [SseReader(one), SseReader(two)]
        for reader in readers:
            room_info(reader, room_id)
        assert first_json(ws)["messages"][0]["type"] == "roomInfo"
        posted = chats(sim.url, room_id, "for everyone")
        for reader in readers:
            assert msg_ids(reader.events(1)) == posted_ids(posted)
        assert [e["data"]["content"] for e in json_events(ws, 1)] == ["for everyone"]
        assert push_connects(sim.url, room_id) == 1
        assert sim_room(sim.url, room_id)["ws_connections"] == 1


def get(
    http: httpx.Client, url: str, headers: dict[str, str] | None = None, **query: str
) -> httpx.Response:
    """A GET that does not wait for the end of a stream that was not refused."""
    with http.stream("GET", url, params=query, headers=headers) as r:
        if r.status_code != 200:
            r.read()
    return r


def refused(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["code"] == status and body["message"], body
    return body


def test_refusals_before_the_stream_starts_are_http_errors(
    gateway: ServerThread, sim: ServerThread, user: User, api_key: str, http: httpx.Client
) -> None:
    creator, other, offline = uname("sa"), uname("sb"), uname("off")
    room_id = new_room(sim.url, creator)
    new_room(sim.url, other)
    httpx.post(f"{sim.url}/_sim/accounts", json={"unique_id": offline}, timeout=10)
    url = f"{gateway.url}/webcast/rooms"
    refused(get(http, f"{url}/{creator}/events", apiKey="lg_ak_unknown"), 401)
    refused(get(http, f"{url}/{creator}/events"), 401)
    bad = {"Authorization": "Bearer lg_at_nothing"}
    assert refused(get(http, f"{url}/{creator}/events", bad), 401)["error"] == "invalid_token"
    refused(get(http, f"{url}/{creator}/events", jwtKey="not.a.jwt"), 401)
    jwt = http.post(
        f"{gateway.url}/webcast/jwt",
        json={"creators": [creator], "max_sockets": 1},
        headers={"X-Api-Key": user.api_key},
    ).json()["token"]
    body = refused(get(http, f"{url}/{other}/events", jwtKey=jwt), 403)
    assert f"@{other}" in body["message"]
    body = refused(get(http, f"{url}/{offline}/events", apiKey=api_key), 404)
    assert body["error"] == "user_offline"
    refused(get(http, f"{url}/no%20body/events", apiKey=api_key), 400)
    r = get(http, f"{url}/{creator}/events", apiKey=api_key, lastEventId="x")
    assert "Last-Event-ID" in refused(r, 400)["message"]
    # The JWT holds one socket: a second is 429.
    with open_sse(http, gateway.url, creator, jwtKey=jwt) as one:
        reader = SseReader(one)  # kept: a dropped reader closes the connection
        room_info(reader, room_id)
        assert "jwt" in refused(get(http, f"{url}/{creator}/events", jwtKey=jwt), 429)["message"]


def test_revoking_the_grant_ends_its_streams_with_an_error_event(
    gateway: ServerThread, sim: ServerThread, database: Database, http: httpx.Client
) -> None:
    viewer = new_user(gateway.url, sim.url, database, uname("rv"))
    streamer = uname("sv")
    room_id = new_room(sim.url, streamer)
    bearer = {"Authorization": f"Bearer {viewer.access_token}"}
    with open_sse(http, gateway.url, streamer, headers=bearer) as r:
        reader = SseReader(r)
        room_info(reader, room_id)
        assert revoke(gateway.url, viewer.app, viewer.refresh_token, "refresh_token").is_success
        error = reader.until_error(timeout=5)
    assert error["code"] == 4401 and "no longer active" in error["message"]


def test_the_end_of_the_live_ends_the_stream_with_4005(
    gateway: ServerThread, sim: ServerThread, api_key: str, http: httpx.Client
) -> None:
    streamer = uname("se")
    room_id = new_room(sim.url, streamer)
    with open_sse(http, gateway.url, streamer, apiKey=api_key) as r:
        reader = SseReader(r)
        room_info(reader, room_id)
        httpx.delete(f"{sim.url}/_sim/rooms/{room_id}", timeout=10).raise_for_status()
        error = reader.until_error()
    assert error["code"] == 4005 and "ended" in error["message"]


def test_a_quiet_stream_sends_keepalive_comments(
    gateway_settings: Settings, sim: ServerThread, database: Database, http: httpx.Client
) -> None:
    server = extra_gateway(gateway_settings, events_sse_keepalive=0.2)
    try:
        key = api_key_for(database, register(database))
        streamer = uname("sk")
        room_id = new_room(sim.url, streamer)
        with open_sse(http, server.url, streamer, apiKey=key) as r:
            reader = SseReader(r)
            room_info(reader, room_id)
            assert reader.next()["comment"] == "keepalive"
    finally:
        server.stop()


def test_a_lingering_feed_ends_when_its_grant_is_revoked(
    gateway_settings: Settings, sim: ServerThread, database: Database, http: httpx.Client
) -> None:
    # A long linger: only the revocation can end the feed within the wait below.
    server = extra_gateway(gateway_settings, events_resume_linger=600)
    try:
        viewer = new_user(server.url, sim.url, database, uname("lg"))
        streamer = uname("sl")
        room_id = new_room(sim.url, streamer)
        bearer = {"Authorization": f"Bearer {viewer.access_token}"}
        with open_sse(http, server.url, streamer, headers=bearer) as r:
            room_info(SseReader(r), room_id)
        # Left: the feed keeps recording the room for a reconnect.
        assert sim_room(sim.url, room_id)["ws_connections"] == 1
        assert revoke(server.url, viewer.app, viewer.refresh_token, "refresh_token").is_success
        wait_for(
            lambda: sim_room(sim.url, room_id)["ws_connections"] == 0,
            what="the revoked grant's feed to leave the room",
        )
    finally:
        server.stop()
