"""The simulator's room activity: the messages a room emits (chat, gift streaks, likes, joins,
follows, shares, the viewer count) on demand and at a set rate, through the control API; and
unmodified TikTokLive 7.0.1 decoding them as its typed events through livegate's relay."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import defaultdict
from typing import Any

import httpx
import pytest
from TikTokLive.events import (
    CommentEvent,
    FollowEvent,
    GiftEvent,
    JoinEvent,
    LikeEvent,
    RoomUserSeqEvent,
    ShareEvent,
)

from livegate.db.engine import Database
from tests.servers import ServerThread, wait_for
from tests.test_tiktoklive_e2e import DEADLINE, _ws_connected, make_client
from tests.webcast_helpers import User, new_room, new_user, room_state

KINDS = {
    "WebcastChatMessage",
    "WebcastGiftMessage",
    "WebcastLikeMessage",
    "WebcastMemberMessage",
    "WebcastSocialMessage",
    "WebcastRoomUserSeqMessage",
}


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def events(sim: ServerThread, room_id: str, since: int = 0) -> list[dict[str, Any]]:
    r = httpx.get(f"{sim.url}/_sim/rooms/{room_id}/events", params={"since": since}, timeout=10)
    r.raise_for_status()
    data: list[dict[str, Any]] = r.json()
    return data


def post_event(sim: ServerThread, room_id: str, **body: Any) -> list[dict[str, Any]]:
    r = httpx.post(f"{sim.url}/_sim/rooms/{room_id}/events", json=body, timeout=10)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()
    return data


def test_a_room_is_quiet_unless_asked(sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("quiet"))
    room = room_state(sim.url, room_id)
    assert room["activity"] is None and room["event_count"] == 0
    assert events(sim, room_id) == []


def test_a_gift_streak_grows_then_ends(sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("gifts"))
    fan = uname("fan")
    streak = post_event(sim, room_id, kind="gift", unique_id=fan, gift="Rose", repeat_count=3)
    assert [(e["repeat_count"], e["repeat_end"]) for e in streak] == [
        (1, False),
        (2, False),
        (3, False),
        (3, True),
    ]
    assert {(e["type"], e["gift"], e["unique_id"]) for e in streak} == {
        ("WebcastGiftMessage", "Rose", fan)
    }
    assert len({e["group_id"] for e in streak}) == 1
    # A gift that does not streak is one message, already ended.
    lion = post_event(sim, room_id, kind="gift", unique_id=fan, gift="Lion", repeat_count=5)
    assert [(e["gift"], e["repeat_count"], e["repeat_end"]) for e in lion] == [("Lion", 1, True)]
    assert room_state(sim.url, room_id)["diamonds"] == 3 * 1 + 29999
    assert [e["seq"] for e in events(sim, room_id)] == sorted(e["seq"] for e in streak + lion)


def test_each_kind_on_demand(sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("kinds"))
    fan = uname("fan")
    post_event(sim, room_id, kind="chat", unique_id=fan, text="hi")
    post_event(sim, room_id, kind="like", unique_id=fan, count=7)
    post_event(sim, room_id, kind="like", unique_id=fan, count=3)
    post_event(sim, room_id, kind="member", unique_id=fan)
    post_event(sim, room_id, kind="social", unique_id=fan, action="follow")
    post_event(sim, room_id, kind="social", unique_id=fan, action="share")
    post_event(sim, room_id, kind="room_user_seq")
    seen = events(sim, room_id)
    assert [e["type"] for e in seen] == [
        "WebcastChatMessage",
        "WebcastLikeMessage",
        "WebcastLikeMessage",
        "WebcastMemberMessage",
        "WebcastSocialMessage",
        "WebcastSocialMessage",
        "WebcastRoomUserSeqMessage",
    ]
    assert [(e["count"], e["total"]) for e in seen[1:3]] == [(7, 7), (3, 10)]
    assert [e["action"] for e in seen[3:6]] == ["join", "follow", "share"]
    assert seen[6]["total"] == 1  # the one join; nobody is connected
    room = room_state(sim.url, room_id)
    assert room["likes"] == 10 and room["viewers"] == 1
    assert [c["content"] for c in room["comments"]] == ["hi"]


def test_the_generator_emits_every_kind_and_stops(sim: ServerThread) -> None:
    r = httpx.post(
        f"{sim.url}/_sim/rooms",
        json={"unique_id": uname("busy"), "activity": {"rate_per_s": 200}},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    room_id = r.json()["room_id"]
    assert r.json()["activity"]["rate_per_s"] == 200

    def kinds_seen() -> bool:
        return {e["type"] for e in events(sim, room_id)} == KINDS

    wait_for(kinds_seen, timeout=20, what="every kind of message")
    seen = events(sim, room_id)
    assert [e["seq"] for e in seen] == sorted({e["seq"] for e in seen})
    streaks: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for e in seen:
        if e["type"] == "WebcastGiftMessage":
            streaks[e["group_id"]].append((e["repeat_count"], e["repeat_end"]))
    for steps in streaks.values():
        counts = [c for c, end in steps if not end]
        assert counts in ([], list(range(1, len(counts) + 1))), steps
        assert [end for _, end in steps].count(True) <= 1 and not any(
            end for _, end in steps[:-1]
        ), steps

    # Stopped: not one more generated message.
    r = httpx.post(f"{sim.url}/_sim/rooms/{room_id}/activity", json={"rate_per_s": 0}, timeout=10)
    assert r.json()["rate_per_s"] == 0
    last = events(sim, room_id)[-1]["seq"]
    mine = post_event(sim, room_id, kind="like", unique_id=uname("fan"))
    assert [e["seq"] for e in events(sim, room_id, since=last)] == [mine[0]["seq"]]


def test_only_the_kinds_asked_for_and_ending_stops_the_generator(sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("likes"))
    r = httpx.post(
        f"{sim.url}/_sim/rooms/{room_id}/activity",
        json={"rate_per_s": 100, "kinds": ["like"]},
        timeout=10,
    )
    assert r.json() == {"rate_per_s": 100.0, "kinds": ["like"]}
    wait_for(lambda: len(events(sim, room_id)) >= 5, timeout=20, what="five likes")
    assert httpx.delete(f"{sim.url}/_sim/rooms/{room_id}", timeout=10).status_code == 200
    room = room_state(sim.url, room_id)
    assert room["activity"]["rate_per_s"] == 0
    assert {e["type"] for e in events(sim, room_id)} == {"WebcastLikeMessage"}
    after = httpx.post(
        f"{sim.url}/_sim/rooms/{room_id}/activity", json={"rate_per_s": 1}, timeout=10
    )
    assert after.status_code == 409
    assert post_event_status(sim, room_id, kind="like") == 409


def post_event_status(sim: ServerThread, room_id: str, **body: Any) -> int:
    return httpx.post(f"{sim.url}/_sim/rooms/{room_id}/events", json=body, timeout=10).status_code


@pytest.mark.parametrize(
    "body",
    [
        {"rate_per_s": -1},
        {"rate_per_s": 5000},
        {"rate_per_s": 1, "kinds": ["dance"]},
        {"kinds": ["like"]},
    ],
)
def test_bad_activity_is_refused(sim: ServerThread, body: dict[str, Any]) -> None:
    room_id = new_room(sim.url, uname("bad"))
    r = httpx.post(f"{sim.url}/_sim/rooms/{room_id}/activity", json=body, timeout=10)
    assert r.status_code == 422


def test_unknown_gift_is_refused(sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("nogift"))
    assert post_event_status(sim, room_id, kind="gift", unique_id="x", gift="Unicorn") == 422
    assert post_event_status(sim, room_id, kind="wave") == 422


# -- TikTokLive decodes them ------------------------------------------------------------------


@pytest.fixture(scope="module")
def viewer(gateway: ServerThread, sim: ServerThread, database: Database) -> User:
    return new_user(gateway.url, sim.url, database, uname("act"))


async def _watch_activity(
    gw_url: str, sim: ServerThread, token: str, fan: str
) -> dict[type, list[Any]]:
    streamer = uname("live")
    room_id = new_room(sim.url, streamer)
    client = make_client(gw_url, streamer, token=token)
    seen: dict[type, list[Any]] = defaultdict(list)
    done = asyncio.Event()
    kinds = (CommentEvent, GiftEvent, LikeEvent, JoinEvent, FollowEvent, ShareEvent)

    for kind in (*kinds, RoomUserSeqEvent):

        @client.on(kind)
        async def on_event(event: Any, kind: type = kind) -> None:
            seen[kind].append(event)
            if isinstance(event, RoomUserSeqEvent):
                done.set()

    task = await client.start(room_id=int(room_id), fetch_live_check=False)
    try:
        await asyncio.wait_for(_ws_connected(sim.url, room_id), DEADLINE)
        post_event(sim, room_id, kind="gift", unique_id=fan, gift="Rose", repeat_count=2)
        post_event(sim, room_id, kind="like", unique_id=fan, count=4)
        post_event(sim, room_id, kind="member", unique_id=fan)
        post_event(sim, room_id, kind="social", unique_id=fan, action="follow")
        post_event(sim, room_id, kind="social", unique_id=fan, action="share")
        post_event(sim, room_id, kind="chat", unique_id=fan, text="gg")
        post_event(sim, room_id, kind="room_user_seq")
        await asyncio.wait_for(done.wait(), DEADLINE)
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return seen


def test_tiktoklive_decodes_gifts_likes_and_the_rest(
    gateway: ServerThread, sim: ServerThread, viewer: User
) -> None:
    fan = uname("fan")
    seen = asyncio.run(_watch_activity(gateway.url, sim, viewer.access_token, fan))
    gifts = seen[GiftEvent]
    assert [(g.gift.name, g.repeat_count, g.repeat_end, g.streaking) for g in gifts] == [
        ("Rose", 1, 0, True),
        ("Rose", 2, 0, True),
        ("Rose", 2, 1, False),
    ]
    assert {g.user.display_id for g in gifts} == {fan}
    assert (gifts[0].gift.diamond_count, gifts[0].gift.type) == (1, 1)  # type 1: streaks
    (like,) = seen[LikeEvent]
    assert (like.count, like.total, like.user.display_id) == (4, 4, fan)
    (join,) = seen[JoinEvent]
    assert join.user.display_id == fan
    assert [e.user.display_id for e in seen[FollowEvent]] == [fan]
    assert [e.user.display_id for e in seen[ShareEvent]] == [fan]
    assert [e.content for e in seen[CommentEvent]] == ["gg"]
    (viewers,) = seen[RoomUserSeqEvent]
    assert viewers.total >= 1
