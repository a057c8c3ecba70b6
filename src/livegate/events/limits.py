"""How many event streams each credential holds open (API key, grant, JWT), and the refusal
(4429) past its maximum.

In memory by default, in Redis when `settings.redis_url` is set, as the rate limits: there
every open stream is a member of a sorted set per credential, scored with the time its lease
runs out; each process renews its own streams' leases, so a process that dies without closing
them frees its slots within `LEASE` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from livegate.events.codes import CloseCode, Closing
from livegate.ratelimit import NAMESPACE

LEASE = 60.0  # seconds a stream's slot outlives its process's last renewal
RENEW_EVERY = 20.0


@dataclass(frozen=True)
class Slot:
    """One credential's count: `name` (kind and a digest prefix or id) and its maximum."""

    name: str
    maximum: int


@dataclass(eq=False)
class Lease:
    slots: list[Slot]
    member: str = field(default_factory=lambda: secrets.token_hex(8))


class StreamCounter:
    def __init__(self, redis_url: str | None) -> None:
        self.redis = aioredis.from_url(redis_url) if redis_url else None
        self.counts: dict[str, int] = {}  # in memory: open streams per slot name
        self.leases: set[Lease] = set()

    def _key(self, slot: Slot) -> str:
        return f"{NAMESPACE}:streams:{slot.name}"

    async def acquire(self, slots: list[Slot]) -> Lease:
        """A lease on one stream for each slot; Closing(4429) when one is full."""
        lease = Lease(slots)
        taken: list[Slot] = []
        try:
            for slot in slots:
                if not await self._take(slot, lease.member):
                    raise Closing(
                        CloseCode.TOO_MANY_CONNECTIONS,
                        f"{slot.name.split(':')[0]} holds {slot.maximum} open streams",
                    )
                taken.append(slot)
        except BaseException:
            await self._give_back(taken, lease.member)
            raise
        self.leases.add(lease)
        return lease

    async def release(self, lease: Lease) -> None:
        if lease in self.leases:
            self.leases.discard(lease)
            await self._give_back(lease.slots, lease.member)

    async def _take(self, slot: Slot, member: str) -> bool:
        if self.redis is None:
            if self.counts.get(slot.name, 0) >= slot.maximum:
                return False
            self.counts[slot.name] = self.counts.get(slot.name, 0) + 1
            return True
        key, now = self._key(slot), time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {member: now + LEASE})
                pipe.zcard(key)
                pipe.expire(key, int(LEASE) + 1)
                count = (await pipe.execute())[2]
            if count > slot.maximum:
                await self.redis.zrem(key, member)
                return False
        except RedisError:
            return True  # counting is down: the stream is not refused for it
        return True

    async def _give_back(self, slots: list[Slot], member: str) -> None:
        for slot in slots:
            if self.redis is None:
                left = self.counts.get(slot.name, 1) - 1
                if left > 0:
                    self.counts[slot.name] = left
                else:
                    self.counts.pop(slot.name, None)
                continue
            with contextlib.suppress(RedisError):
                await self.redis.zrem(self._key(slot), member)

    async def renew(self) -> None:
        """Runs for the app's life (Redis only): pushes this process's leases forward."""
        if self.redis is None:
            return
        while True:
            await asyncio.sleep(RENEW_EVERY)
            until = time.time() + LEASE
            with contextlib.suppress(RedisError):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for lease in list(self.leases):
                        for slot in lease.slots:
                            pipe.zadd(self._key(slot), {lease.member: until}, xx=True)
                            pipe.expire(self._key(slot), int(LEASE) + 1)
                    await pipe.execute()

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
