"""A managed connection to one LIVE room, as TikTok's web client keeps it: im/fetch, then
TikTok's push WebSocket with heartbeats and acks, and when TikTok drops the socket, a fetch
from the last cursor and a new socket, so that the reader sees every message once and in order.

The same cookies sign the fetch and open the socket: a fetch signed with a session binds the
socket to that `sessionid` (TikTok refuses the handshake with `illegal secret key` otherwise).
Messages are deduplicated by `msg_id`, which is what makes a reconnect's overlap (what the old
socket delivered and the catch-up fetch returns again) invisible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed

from livegate.tiktok import frames
from livegate.tiktok.browser import browser_params
from livegate.tiktok.cookies import IDENTITY_COOKIE_NAMES
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    PushLost,
    RoomNotFound,
    SessionExpired,
    UpstreamError,
    UserNotFound,
    UserOffline,
)
from livegate.tiktok.http import DEFAULT_USER_AGENT
from livegate.tiktok.push import PushRefused, PushSocket, PushUnreachable, open_push
from livegate.tiktok.webcast import WebcastClient

log = logging.getLogger(__name__)

SUBPROTOCOLS = ["echo-protocol"]
DEFAULT_PING_INTERVAL = 10.0
MAX_FAILURES = 6  # reconnects in a row that fail before the room is given up
BACKOFF = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0)
STEADY_AFTER = 30.0  # a socket that lived this long was fine: its drop starts a new count
SEEN_IDS = 8192  # msg_ids remembered for deduplication
# Failures that reconnecting cannot cure.
FINAL_ERRORS = (
    SessionExpired,
    AgeRestricted,
    PrivateRoom,
    RoomNotFound,
    UserOffline,
    UserNotFound,
)
# The push query TikTok's web client sends beside the fetch result's route_params.
_PUSH_CONSTANTS = {
    "identity": "audience",
    "live_id": "12",
    "version_code": "180800",
    "update_version_code": "2.0.0",
    "heartbeat_duration": "10000",
    "resp_content_type": "protobuf",
    "history_comment_count": "6",
    "sup_ws_ds_opt": "1",
    "did_rule": "3",
    "last_rtt": "0",
    "client_enter": "1",
    "compress": "gzip",
}


@dataclass
class Batch:
    """What one fetch result or push frame brought that the reader has not seen yet."""

    messages: list[frames.PushMessage]
    cursor: str
    internal_ext: str
    ended: bool = False  # TikTok said "live end": nothing follows
    # The push frame's fetch result as TikTok encoded it, when `messages` are all of its
    # messages (none was seen before): passed on as it is, not encoded again.
    payload: bytes | None = None


@dataclass
class _RecentIds:
    """The last `size` msg_ids, for deduplication in constant memory."""

    size: int
    order: deque[int] = field(default_factory=deque)
    ids: set[int] = field(default_factory=set)

    def add(self, msg_id: int) -> bool:
        """False when `msg_id` was seen already."""
        if msg_id in self.ids:
            return False
        self.ids.add(msg_id)
        self.order.append(msg_id)
        if len(self.order) > self.size:
            self.ids.discard(self.order.popleft())
        return True


class RoomStream:
    """One viewer's connection to a room. `open()` makes the first fetch (its errors are
    TikTok's answer about the room); `batches()` then runs the push side until the stream ends
    (a last batch with `ended`), or raises PushLost / a final UpstreamError."""

    def __init__(
        self,
        client: WebcastClient,
        room_id: str,
        *,
        cookies: dict[str, str] | None,
        user_agent: str | None = None,
    ) -> None:
        self.client = client
        self.room_id = room_id
        self.cookies = dict(cookies or {})
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.cursor = ""
        self.internal_ext = ""
        self.sockets_opened = 0
        self._visitor: dict[str, str] = {}
        self._push_server = ""
        self._route_params: dict[str, str] = {}
        self._heartbeat = DEFAULT_PING_INTERVAL
        self._seen = _RecentIds(SEEN_IDS)
        self._fresh = False  # the last fetch's push_server/route_params are unused yet

    # -- fetch --------------------------------------------------------------------------------

    async def open(self) -> Batch:
        """The first fetch: the room's recent history, and where its push server is."""
        return await self._fetch(first=True)

    async def _fetch(self, *, first: bool) -> Batch:
        fetched = await self.client.fetch(
            self.room_id,
            cookies=self.cookies or None,
            cursor=self.cursor,
            internal_ext=self.internal_ext,
            user_agent=self.user_agent,
            client_enter=first,
        )
        try:
            result = frames.FetchResult.FromString(fetched.body)
        except frames.UPB_ERRORS as exc:
            raise UpstreamError(f"im/fetch: undecodable result ({type(exc).__name__})") from None
        self._visitor.update(
            {k: v for k, v in fetched.set_cookies.items() if k not in IDENTITY_COOKIE_NAMES}
        )
        if result.push_server:
            self._push_server = result.push_server
            self._route_params = frames.route_params(result)
            self._fresh = True
        if result.heartbeat_duration:
            self._heartbeat = max(1.0, result.heartbeat_duration / 1000)
        return self._batch(result)

    def _batch(self, result: Any, payload: bytes | None = None) -> Batch:
        """`result` (a frames.FetchResult) less the messages seen already."""
        self.cursor = result.cursor or self.cursor
        self.internal_ext = result.internal_ext or self.internal_ext
        new: list[frames.PushMessage] = []
        ended = False
        for message in result.messages:
            if message.msg_id and not self._seen.add(message.msg_id):
                continue
            new.append(message)
            ended = ended or frames.ends_stream(message)
        whole = payload if len(new) == len(result.messages) else None
        return Batch(new, self.cursor, self.internal_ext, ended, whole)

    # -- push ---------------------------------------------------------------------------------

    def _push_url(self) -> str:
        query = {
            **self._route_params,
            **browser_params(self.user_agent),
            **_PUSH_CONSTANTS,
            "room_id": self.room_id,
        }
        return f"{self._push_server}?{urlencode(query)}"

    def _push_cookies(self) -> dict[str, str]:
        # TikTok's visitor cookies from the fetches, then the caller's own (its session).
        return {**self._visitor, **self.cookies}

    async def batches(self) -> AsyncIterator[Batch]:
        failures = 0
        while True:
            if not self._fresh:
                try:
                    batch = await self._fetch(first=False)
                except FINAL_ERRORS:
                    raise
                except UpstreamError as exc:
                    failures = await self._failed(failures, f"catch-up fetch: {exc.code}")
                    continue
                if batch.messages or batch.ended:
                    yield batch
                if batch.ended:
                    return
            self._fresh = False
            if not self._push_server:
                raise PushLost("im/fetch named no push server")
            try:
                socket = await open_push(
                    self._push_url(),
                    cookies=self._push_cookies(),
                    user_agent=self.user_agent,
                    subprotocols=SUBPROTOCOLS,
                )
            except (PushRefused, PushUnreachable) as exc:
                failures = await self._failed(failures, f"push handshake: {type(exc).__name__}")
                continue
            self.sockets_opened += 1
            opened = time.monotonic()
            async with contextlib.aclosing(self._read(socket)) as reading:
                async for batch in reading:
                    failures = 0
                    yield batch
                    if batch.ended:
                        return
            if time.monotonic() - opened >= STEADY_AFTER:
                failures = 0
            failures = await self._failed(failures, "TikTok closed the push socket")

    async def _failed(self, failures: int, what: str) -> int:
        """Count a failure and wait before the next try; PushLost once there were too many."""
        if failures >= MAX_FAILURES:
            raise PushLost(f"room {self.room_id}: {what}, {failures} times in a row")
        log.info("room %s: %s; reconnecting from the cursor", self.room_id, what)
        await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
        return failures + 1

    async def _read(self, socket: PushSocket) -> AsyncGenerator[Batch, None]:
        interval = frames.ping_interval(socket.handshake_options, self._heartbeat)
        beats = asyncio.create_task(self._beat(socket, interval))
        try:
            await socket.send(frames.enter_room_frame(self.room_id))
            async for data in socket.frames():
                raw = data.encode() if isinstance(data, str) else data
                try:
                    decoded = frames.decode_msg_frame(raw)
                except frames.BadFrame as exc:
                    log.info("room %s: %s", self.room_id, exc)
                    continue
                if decoded is None:
                    continue
                frame, result, payload = decoded
                if result.need_ack:
                    await socket.send(frames.ack_frame(frame, result))
                yield self._batch(result, payload)
        except ConnectionClosed:
            pass  # TikTok dropped it; the caller fetches from the cursor and reconnects
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beats
            with contextlib.suppress(Exception):
                await socket.close()

    async def _beat(self, socket: PushSocket, interval: float) -> None:
        seq = 1
        with contextlib.suppress(ConnectionClosed):
            while True:
                await socket.send(frames.heartbeat_frame(self.room_id, seq))
                seq += 1
                await asyncio.sleep(interval)
