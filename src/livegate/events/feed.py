"""The Server-Sent Events side of a room's upstream: one `Feed` per (room, credential) key in
this process, shared by every SSE subscriber of it.

A feed is one subscriber of the hub's upstream (events/hub.py: the WebSocket subscribers of
the same key share that upstream too, so SSE opens no second TikTok connection). It records
each delivery's events once in the resume buffer (events/resume.py), which gives them their
ids, and hands them to its listeners. When its last listener leaves it lingers for `linger`
seconds, still recording, so that a client that reconnects (here or on another instance,
which reads the shared buffer) misses nothing; then it leaves the upstream. A feed whose
credential dies ends at once when nobody listens (the listeners end on their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from livegate.events.batch import EventBatch, dumps
from livegate.events.codes import CloseCode, Closing
from livegate.events.hub import Subscription
from livegate.events.resume import Entry, ResumeBuffer
from livegate.events.shared import Inbox, cancel_all, join_when_ready

log = logging.getLogger(__name__)

LISTENER_QUEUE = 2048  # entries a listener may have waiting before it is ended


def _msg_id(event: dict[str, Any]) -> str:
    common = event.get("data", {}).get("common")
    msg_id = common.get("msg_id") if isinstance(common, dict) else None
    return str(msg_id) if msg_id and str(msg_id) != "0" else ""


@dataclass(frozen=True)
class Watch:
    """The credential a feed was opened with: `ended` is set when it dies; `release` when the
    feed no longer needs to know."""

    ended: asyncio.Event
    release: Callable[[], None]


class Listener(Inbox[Entry]):
    def __init__(self, feed: Feed) -> None:
        super().__init__(LISTENER_QUEUE)
        self.feed = feed

    @property
    def room_info(self) -> dict[str, Any]:
        return self.feed.room_info

    @property
    def buffer_key(self) -> str:
        return self.feed.buffer_key

    def close(self) -> None:
        self.feed.leave(self)


class Feed:
    def __init__(
        self,
        feeds: Feeds,
        key: Hashable,
        buffer_key: str,
        subscribe: Callable[[], Awaitable[Subscription]],
        watch: Watch | None,
    ) -> None:
        self.feeds = feeds
        self.key = key
        self.buffer_key = buffer_key
        self.subscribe = subscribe
        self.watch = watch
        self.listeners: set[Listener] = set()
        self.room_info: dict[str, Any] = {}
        self.ready = asyncio.Event()
        self.failure: Closing | None = None
        self.task: asyncio.Task[None] | None = None
        self.lingering: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"events feed {self.key}")

    async def _run(self) -> None:
        sub: Subscription | None = None
        try:
            sub = await self.subscribe()
            self.room_info = sub.room_info
            self.ready.set()
            while True:
                item = await sub.next()
                if isinstance(item, Closing):
                    raise item
                await self._record(item)
        except Closing as exc:
            self._end(exc)
        except asyncio.CancelledError:
            self._end(Closing(CloseCode.NORMAL))
            raise
        except Exception:
            log.exception("event feed %s failed", self.buffer_key)
            self._end(Closing(CloseCode.INTERNAL_SERVER_ERROR))
        finally:
            if sub is not None:
                sub.close()

    async def _record(self, batch: EventBatch) -> None:
        events = batch.events()
        if not events:
            return
        entries = await self.feeds.buffer.record(
            self.buffer_key, [(_msg_id(e), dumps(e)) for e in events]
        )
        for listener in list(self.listeners):
            for entry in entries:
                listener.offer(entry)

    def _end(self, closing: Closing) -> None:
        self.failure = closing
        self.ready.set()
        self.feeds.forget(self)
        if self.watch is not None:
            self.watch.release()
        for listener in list(self.listeners):
            listener.offer(closing)
        self.listeners.clear()
        if self.lingering is not None:
            self.lingering.cancel()

    def join(self) -> Listener:
        listener = Listener(self)
        if self.failure is not None:
            listener.offer(self.failure)
            return listener
        if self.lingering is not None:
            self.lingering.cancel()
            self.lingering = None
        self.listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if self.listeners or self.failure is not None or self.lingering is not None:
            return
        if not self.ready.is_set() and self.task is not None:
            self.task.cancel()  # nobody waits for it any more
            return
        self.lingering = asyncio.create_task(self._linger(), name=f"events feed linger {self.key}")

    async def _linger(self) -> None:
        with contextlib.suppress(TimeoutError):
            if self.watch is not None:
                await asyncio.wait_for(self.watch.ended.wait(), self.feeds.linger)
            else:
                await asyncio.sleep(self.feeds.linger)
        if not self.listeners and self.task is not None:
            self.lingering = None
            self.task.cancel()


class Feeds:
    """The feeds open in this process, by the hub's key."""

    def __init__(self, buffer: ResumeBuffer, linger: float) -> None:
        self.buffer = buffer
        self.linger = linger
        self.feeds: dict[Hashable, Feed] = {}

    def forget(self, feed: Feed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    async def listen(
        self,
        key: Hashable,
        buffer_key: str,
        subscribe: Callable[[], Awaitable[Subscription]],
        watch: Callable[[], Watch | None],
    ) -> Listener:
        """A listener of `key`'s feed, started with `subscribe()` when none runs; returns once
        the room info is in, or raises the Closing the feed ended with."""
        feed = self.feeds.get(key)
        if feed is None or feed.failure is not None:
            feed = Feed(self, key, buffer_key, subscribe, watch())
            self.feeds[key] = feed
            feed.start()
        return await join_when_ready(feed)

    async def aclose(self) -> None:
        await cancel_all(f.task for f in self.feeds.values())
