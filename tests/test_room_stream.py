"""The managed room connection (tiktok/room_stream.py) against the simulator: im/fetch, the push
WebSocket with im_enter_room, heartbeats and acks, reconnects from the cursor when TikTok drops
the socket (no gap, no duplicate), and the stream's end."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from TikTokLive.proto import WebcastChatMessage

from livegate.config import Settings
from livegate.tiktok.http import make_http_client
from livegate.tiktok.room_stream import Batch, RoomStream
from livegate.tiktok.signer import PassThroughSigner
from livegate.tiktok.webcast import WebcastClient
from tests.servers import ServerThread
from tests.webcast_helpers import add_comment, new_room, room_state

T = TypeVar("T")


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
async def client(sim: ServerThread, tmp_path: Path) -> AsyncIterator[WebcastClient]:
    settings = Settings(tiktok_url=sim.url, data_dir=tmp_path)
    async with make_http_client(settings) as http:
        yield WebcastClient(http, settings, PassThroughSigner())


async def until(pred: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def texts(batch: Batch) -> list[str]:
    return [
        WebcastChatMessage().parse(m.payload).content
        for m in batch.messages
        if m.method == "WebcastChatMessage"
    ]


class Reader:
    """Runs `stream.batches()` in a task and keeps what it yields."""

    def __init__(self, stream: RoomStream) -> None:
        self.stream = stream
        self.batches: list[Batch] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.stream.batches():
            self.batches.append(batch)

    def texts(self) -> list[str]:
        return [t for b in self.batches for t in texts(b)]

    def msg_ids(self) -> list[int]:
        return [m.msg_id for b in self.batches for m in b.messages]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def connects(sim_url: str, room_id: str) -> list[dict[str, Any]]:
    log = room_state(sim_url, room_id)["ws_log"]
    return [e for e in log if e["type"] == "connect"]


async def test_history_then_live_messages_with_enter_heartbeat_and_ack(
    sim: ServerThread, client: WebcastClient
) -> None:
    room_id = new_room(sim.url, uname("rs"))
    add_comment(sim.url, room_id, uname("fan"), "before")
    stream = RoomStream(client, room_id, cookies=None)
    first = await stream.open()
    assert texts(first) == ["before"]
    reader = Reader(stream)
    try:
        await until(lambda: connects(sim.url, room_id), what="the push socket")
        for text in ("one", "two", "three"):
            add_comment(sim.url, room_id, uname("fan"), text)
        await until(lambda: reader.texts() == ["one", "two", "three"], what="live comments")

        def frames_seen() -> list[dict[str, Any]] | None:
            log: list[dict[str, Any]] = room_state(sim.url, room_id)["ws_log"]
            return log if {"im_enter_room", "hb", "ack"} <= {e["type"] for e in log} else None

        log = await until(frames_seen, what="enter, heartbeat and ack frames")
    finally:
        await reader.stop()
    [enter] = [e for e in log if e["type"] == "im_enter_room"]
    assert enter["room_id"] == room_id and enter["identity"] == "audience"
    assert all("seq:" in e["payload"] for e in log if e["type"] == "ack")
    [connect] = connects(sim.url, room_id)
    assert connect["compress"] is True and connect["with_session"] is False


async def test_a_dropped_socket_reconnects_from_the_cursor_without_gap_or_duplicate(
    sim: ServerThread, client: WebcastClient
) -> None:
    room_id = new_room(sim.url, uname("rd"))
    stream = RoomStream(client, room_id, cookies=None)
    await stream.open()
    reader = Reader(stream)
    try:
        await until(lambda: connects(sim.url, room_id), what="the push socket")
        add_comment(sim.url, room_id, uname("fan"), "a")
        await until(lambda: reader.texts() == ["a"], what="the first comment")
        dropped = httpx.post(f"{sim.url}/_sim/rooms/{room_id}/drop", timeout=10).json()
        assert dropped == {"dropped": 1}
        # Posted while the socket is down or coming back: the catch-up fetch or the new
        # socket brings them, and whatever both bring arrives once.
        for text in ("b", "c", "d"):
            add_comment(sim.url, room_id, uname("fan"), text)
        await until(lambda: len(connects(sim.url, room_id)) == 2, what="a second socket")
        add_comment(sim.url, room_id, uname("fan"), "e")
        await until(lambda: "e" in reader.texts(), what="a comment over the new socket")
    finally:
        await reader.stop()
    assert reader.texts() == ["a", "b", "c", "d", "e"]
    ids = reader.msg_ids()
    assert len(ids) == len(set(ids))
    assert stream.sockets_opened == 2


async def test_the_stream_ends_with_tiktoks_live_end(
    sim: ServerThread, client: WebcastClient
) -> None:
    room_id = new_room(sim.url, uname("re"))
    stream = RoomStream(client, room_id, cookies=None)
    await stream.open()
    reader = Reader(stream)
    await until(lambda: connects(sim.url, room_id), what="the push socket")
    httpx.delete(f"{sim.url}/_sim/rooms/{room_id}", timeout=10).raise_for_status()
    await asyncio.wait_for(reader.task, timeout=10)  # batches() returns by itself
    assert reader.batches[-1].ended
    assert reader.batches[-1].messages[-1].method == "WebcastControlMessage"


async def test_a_session_signs_the_fetch_and_opens_the_socket(
    sim: ServerThread, client: WebcastClient
) -> None:
    viewer = uname("sv")
    jar = httpx.post(f"{sim.url}/_sim/sessions", json={"unique_id": viewer}, timeout=10).json()
    room_id = new_room(sim.url, uname("rx"), age_restricted=True)
    stream = RoomStream(client, room_id, cookies=jar["cookies"])
    await stream.open()
    reader = Reader(stream)
    try:
        [connect] = await until(lambda: connects(sim.url, room_id), what="the push socket")
        add_comment(sim.url, room_id, uname("fan"), "restricted hello")
        await until(lambda: reader.texts() == ["restricted hello"], what="the comment")
    finally:
        await reader.stop()
    assert connect["with_session"] is True and "sessionid" in connect["cookie_names"]
