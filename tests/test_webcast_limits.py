"""livegate's in-memory rate-limit storage counts as the `limits` library's own does (the
webcast API's call limits and every other limit use it when no Redis is configured)."""

from __future__ import annotations

import asyncio
import time


def test_limits_memory_storage_still_has_the_hook_livegate_overrides() -> None:
    from limits.aio.storage import MemoryStorage

    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))


async def test_lean_incr_counts_as_limits_own_memory_storage() -> None:
    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import FixedWindowRateLimiter

    from livegate.ratelimit import SweepingMemoryStorage

    item = parse("3/minute")
    theirs, ours = MemoryStorage(), SweepingMemoryStorage()
    for storage in (theirs, ours):
        limiter = FixedWindowRateLimiter(storage)
        hits = [await limiter.hit(item, key) for key in ("a", "a", "b", "a", "a", "b")]
        assert hits == [True, True, True, True, False, True]
        stats = await limiter.get_window_stats(item, "a")
        assert stats.remaining == 0 and stats.reset_time > time.time() + 50
    assert ours.storage == theirs.storage
    assert ours.expirations.keys() == theirs.expirations.keys()


async def test_sweeping_memory_storage_counts_windows_like_limits() -> None:
    from limits import parse
    from limits.aio.strategies import FixedWindowRateLimiter

    from livegate.ratelimit import SweepingMemoryStorage

    storage = SweepingMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    item = parse("2/second")
    assert [await limiter.hit(item, "k") for _ in range(3)] == [True, True, False]
    deadline = time.monotonic() + 5
    while not await limiter.hit(item, "k"):  # a new window opens
        assert time.monotonic() < deadline, "the window never reset"
        await asyncio.sleep(0.05)
    await limiter.hit(item, "other")
    deadline = time.monotonic() + 5
    while storage.storage.get(item.key_for("other")):  # expired windows are swept away
        assert time.monotonic() < deadline, "expired windows were never swept"
        await asyncio.sleep(0.1)
        await limiter.hit(parse("5/second"), "tick")  # hits are what schedule the sweep
