"""One upstream connection per (room, credential), shared by its subscribers.

The first subscriber of a key starts an `Upstream`: room info, the first fetch, then the push
side (tiktok/room_stream.py). Every batch it brings is offered to each subscriber's bounded
queue; a subscriber whose queue is full has fallen behind and is ended (1011), so that one slow
reader costs neither memory nor the others' latency. The last subscriber to leave stops the
upstream; an upstream that ends (live end, TikTok gone, a refusal) ends its subscribers with
the matching close code.

A subscriber that joins a running upstream gets its room info and its recent messages (at most
`RECENT`), then what follows. Upstreams live in this process: a subscriber on another instance
has its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from livegate.events.batch import EventBatch
from livegate.events.codes import CloseCode, Closing
from livegate.events.shared import Inbox, cancel_all, join_when_ready
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
from livegate.tiktok.frames import PushMessage
from livegate.tiktok.room_stream import Batch, RoomStream

log = logging.getLogger(__name__)

QUEUE_BATCHES = 256  # deliveries a subscriber may have waiting before it is ended
RECENT = 50  # messages a late subscriber is replayed


def closing_for(exc: UpstreamError, stage: str) -> Closing:
    """The close code for a failure upstream; `stage` is "room_info", "fetch" or "push"."""
    if isinstance(exc, UserOffline | UserNotFound | RoomNotFound):
        return Closing(CloseCode.NOT_LIVE, exc.code)
    if isinstance(exc, SessionExpired):
        return Closing(CloseCode.INVALID_AUTH, "login_required: sign the user in again")
    if isinstance(exc, AgeRestricted | PrivateRoom):
        detail = f"{exc.code}: needs a signed-in user who may watch (a user's access token)"
        return Closing(CloseCode.ROOM_INFO_FETCH_ERROR, detail)
    if isinstance(exc, PushLost):
        return Closing(CloseCode.TIKTOK_CLOSED_CONNECTION)
    code = {
        "room_info": CloseCode.ROOM_INFO_FETCH_ERROR,
        "fetch": CloseCode.WEBCAST_FETCH_ERROR,
    }.get(stage, CloseCode.TIKTOK_CLOSED_CONNECTION)
    return Closing(code, exc.code)


class Subscription(Inbox[EventBatch]):
    def __init__(self, upstream: Upstream) -> None:
        super().__init__(QUEUE_BATCHES)
        self.upstream = upstream

    @property
    def room_info(self) -> dict[str, Any]:
        return self.upstream.room_info

    def close(self) -> None:
        self.upstream.leave(self)


class Upstream:
    def __init__(
        self,
        hub: EventHub,
        key: Hashable,
        stream: RoomStream,
        room_info: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        self.hub = hub
        self.key = key
        self.stream = stream
        self.load_info = room_info
        self.room_info: dict[str, Any] = {}
        self.subscribers: set[Subscription] = set()
        self.recent: deque[PushMessage] = deque(maxlen=RECENT)
        self.next_seq = 1
        self.ready = asyncio.Event()
        self.failure: Closing | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"events upstream {self.key}")

    async def _run(self) -> None:
        try:
            await self._follow()
        except Closing as exc:
            self._end(exc)
        except asyncio.CancelledError:
            self._end(Closing(CloseCode.NORMAL))
            raise
        except Exception:
            log.exception("event upstream for room %s failed", self.stream.room_id)
            self._end(Closing(CloseCode.INTERNAL_SERVER_ERROR))

    async def _follow(self) -> None:
        stage = "room_info"
        try:
            self.room_info = await self.load_info()
            stage = "fetch"
            first = await self.stream.open()
            self.ready.set()
            if self._publish(first):
                return
            stage = "push"
            async for batch in self.stream.batches():
                if self._publish(batch):
                    return
        except UpstreamError as exc:
            raise closing_for(exc, stage) from None
        raise closing_for(PushLost("the push side stopped"), "push")

    def _publish(self, batch: Batch) -> bool:
        """Offer `batch` to every subscriber; True when it was the stream's last."""
        if batch.messages:
            event = EventBatch(
                self.next_seq, batch.messages, batch.cursor, batch.internal_ext, batch.payload
            )
            self.next_seq += len(batch.messages)
            self.recent.extend(batch.messages)
            for sub in list(self.subscribers):
                sub.offer(event)
        if batch.ended:
            self._end(Closing(CloseCode.STREAM_END))
        return batch.ended

    def _end(self, closing: Closing) -> None:
        self.failure = closing
        self.ready.set()
        self.hub.forget(self)
        for sub in list(self.subscribers):
            sub.offer(closing)
        self.subscribers.clear()

    def join(self) -> Subscription:
        sub = Subscription(self)
        if self.failure is not None:
            sub.offer(self.failure)
            return sub
        if self.ready.is_set() and self.recent:
            # Replayed first, then whatever is published from now on: in order, once.
            first_seq = self.next_seq - len(self.recent)
            stream = self.stream
            sub.offer(EventBatch(first_seq, list(self.recent), stream.cursor, stream.internal_ext))
        self.subscribers.add(sub)
        return sub

    def leave(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers and self.task is not None and self.failure is None:
            self.hub.forget(self)
            self.task.cancel()


class EventHub:
    """The upstreams open in this process, by (room, credential) key."""

    def __init__(self) -> None:
        self.upstreams: dict[Hashable, Upstream] = {}

    def forget(self, upstream: Upstream) -> None:
        if self.upstreams.get(upstream.key) is upstream:
            del self.upstreams[upstream.key]

    async def subscribe(
        self,
        key: Hashable,
        stream: Callable[[], RoomStream],
        room_info: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Subscription:
        """A subscription to `key`'s upstream, started with `stream()` and `room_info()` when
        none is running; returns once the room info and the first fetch are in, or raises the
        Closing the upstream ended with."""
        upstream = self.upstreams.get(key)
        if upstream is None:
            upstream = Upstream(self, key, stream(), room_info)
            self.upstreams[key] = upstream
            upstream.start()
        return await join_when_ready(upstream)

    async def aclose(self) -> None:
        await cancel_all(u.task for u in self.upstreams.values())
