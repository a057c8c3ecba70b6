"""The resume buffer of the Server-Sent Events stream: a room's recent events, per upstream key
(room and credential), each under an id, so that a client reconnecting with `Last-Event-ID`
gets what came after it, on any instance.

One interface, two storages, as the rate limits: in this process's memory by default (one
instance), a Redis stream per key when `settings.redis_url` is set (a fleet: the reconnect may
reach another instance). Bounded either way, by count (`max_events` per key) and age
(`max_age` seconds; a key with nothing newer goes altogether).

Ids are Redis stream ids, `<ms>-<n>`, ordered; the memory storage makes them the same way.
An event is recorded once per key: it is known by TikTok's `msg_id`, and recording it again
(another instance's upstream of the same room and credential, or a new upstream's first fetch
replaying the room's history) answers the id it already has.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis import asyncio as aioredis

from livegate.ratelimit import NAMESPACE

_ID_RE = re.compile(r"^(\d{1,19})-(\d{1,19})$")


class BadEventId(ValueError):
    """A Last-Event-ID that no buffer ever gave."""


def parse_id(value: str) -> tuple[int, int]:
    found = _ID_RE.fullmatch(value)
    if found is None:
        raise BadEventId(value)
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class Entry:
    id: str
    data: str  # the event's JSON text

    @property
    def order(self) -> tuple[int, int]:
        return parse_id(self.id)


@dataclass(frozen=True)
class Backlog:
    entries: list[Entry]
    # The asked id is older than the buffer (or the buffer is gone): events between it and
    # `entries` may be missing.
    gap: bool = False


class ResumeBuffer(Protocol):
    async def record(self, key: str, events: list[tuple[str, str]]) -> list[Entry]:
        """Record `events` ((msg_id or "", JSON text)) in order; their entries."""
        ...

    async def since(self, key: str, last_id: str) -> Backlog:
        """What was recorded after `last_id`."""
        ...

    async def tail(self, key: str, count: int) -> list[Entry]:
        """The last `count` entries, oldest first."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _Events:
    entries: deque[tuple[Entry, float]] = field(default_factory=deque)
    by_msg_id: dict[str, str] = field(default_factory=dict)
    msg_ids: dict[str, str] = field(default_factory=dict)  # entry id -> msg_id
    last: tuple[int, int] = (0, 0)
    touched: float = 0.0


class MemoryResume:
    """The buffer in this process (a single instance)."""

    SWEEP_EVERY = 10.0

    def __init__(self, max_events: int, max_age: float) -> None:
        self.max_events = max_events
        self.max_age = max_age
        self.keys: dict[str, _Events] = {}
        self._swept = 0.0

    def _next_id(self, events: _Events) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_n = events.last
        events.last = (ms, 0) if ms > last_ms else (last_ms, last_n + 1)
        return f"{events.last[0]}-{events.last[1]}"

    def _prune(self, events: _Events, now: float) -> None:
        while events.entries and (
            len(events.entries) > self.max_events or events.entries[0][1] < now - self.max_age
        ):
            entry, _ = events.entries.popleft()
            msg_id = events.msg_ids.pop(entry.id, None)
            if msg_id is not None:
                events.by_msg_id.pop(msg_id, None)

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        for key in [k for k, e in self.keys.items() if e.touched < now - self.max_age]:
            del self.keys[key]

    async def record(self, key: str, events: list[tuple[str, str]]) -> list[Entry]:
        now = time.time()
        self._sweep(now)
        kept = self.keys.setdefault(key, _Events())
        kept.touched = now
        out = []
        for msg_id, data in events:
            known = kept.by_msg_id.get(msg_id) if msg_id else None
            if known is not None:
                out.append(Entry(known, data))
                continue
            entry = Entry(self._next_id(kept), data)
            kept.entries.append((entry, now))
            if msg_id:
                kept.by_msg_id[msg_id] = entry.id
                kept.msg_ids[entry.id] = msg_id
            out.append(entry)
        self._prune(kept, now)
        return out

    async def since(self, key: str, last_id: str) -> Backlog:
        after = parse_id(last_id)
        kept = self.keys.get(key)
        if kept is not None:
            self._prune(kept, time.time())
        if kept is None or not kept.entries:
            return Backlog([], gap=True)
        entries = [e for e, _ in kept.entries if e.order > after]
        return Backlog(entries, gap=after < kept.entries[0][0].order)

    async def tail(self, key: str, count: int) -> list[Entry]:
        kept = self.keys.get(key)
        if kept is None:
            return []
        self._prune(kept, time.time())
        return [e for e, _ in list(kept.entries)[-count:]] if count > 0 else []

    async def aclose(self) -> None:
        self.keys.clear()


# KEYS[1]: the stream. ARGV: max events, max age (s), oldest id to keep (ms), then
# (msg_id, data) pairs. A msg_id seen before answers its id (kept under <stream>:m:<msg_id>
# for as long as the events are); the others are added. Atomic, so two instances recording
# the same message race to one entry.
_RECORD = """
local ids = {}
for i = 4, #ARGV, 2 do
  local mid, data, seen = ARGV[i], ARGV[i + 1], false
  if mid ~= "" then seen = redis.call("GET", KEYS[1] .. ":m:" .. mid) end
  if seen then
    ids[#ids + 1] = seen
  else
    local id = redis.call("XADD", KEYS[1], "MAXLEN", ARGV[1], "*", "d", data)
    if mid ~= "" then redis.call("SET", KEYS[1] .. ":m:" .. mid, id, "EX", ARGV[2]) end
    ids[#ids + 1] = id
  end
end
redis.call("XTRIM", KEYS[1], "MINID", ARGV[3])
redis.call("EXPIRE", KEYS[1], ARGV[2])
return ids
"""


class RedisResume:
    """The buffer in Redis: one stream per key (`XADD MAXLEN`, trimmed by age, expiring
    with its last event), shared by every instance."""

    def __init__(self, url: str, max_events: int, max_age: float) -> None:
        self.redis = aioredis.from_url(url)
        self.max_events = max_events
        self.max_age = max(1, int(max_age))
        self._record = self.redis.register_script(_RECORD)

    @staticmethod
    def _key(key: str) -> str:
        return f"{NAMESPACE}:resume:{key}"

    @staticmethod
    def _entries(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry]:
        return [Entry(i.decode(), fields[b"d"].decode()) for i, fields in rows]

    async def record(self, key: str, events: list[tuple[str, str]]) -> list[Entry]:
        oldest = int((time.time() - self.max_age) * 1000)
        args: list[str | int] = [self.max_events, self.max_age, oldest]
        for msg_id, data in events:
            args += [msg_id, data]
        ids = await self._record(keys=[self._key(key)], args=args)
        return [Entry(i.decode(), data) for i, (_, data) in zip(ids, events, strict=True)]

    async def since(self, key: str, last_id: str) -> Backlog:
        after = parse_id(last_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self._key(key), "-", "+", count=1)
            pipe.xrange(self._key(key), f"({after[0]}-{after[1]}", "+", count=self.max_events)
            first, rows = await pipe.execute()
        if not first:
            return Backlog([], gap=True)
        gap = after < parse_id(first[0][0].decode())
        return Backlog(self._entries(rows), gap=gap)

    async def tail(self, key: str, count: int) -> list[Entry]:
        if count <= 0:
            return []
        rows: Any = await self.redis.xrevrange(self._key(key), "+", "-", count=count)
        return self._entries(list(reversed(rows)))

    async def aclose(self) -> None:
        await self.redis.aclose()


def make_resume(redis_url: str | None, max_events: int, max_age: float) -> ResumeBuffer:
    if redis_url:
        return RedisResume(redis_url, max_events, max_age)
    return MemoryResume(max_events, max_age)
