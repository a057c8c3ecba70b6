"""The SSE resume buffer (events/resume.py) on its own, in memory and (when configured) in Redis:
ordered ids, one entry per message however often it is recorded, and its bounds by count and
by age, past which a resume says `gap`."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest

from livegate.events.resume import MemoryResume, RedisResume, ResumeBuffer, parse_id

Build = Callable[[int, float], ResumeBuffer]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Build]:
    url = os.environ.get("LIVEGATE_TEST_REDIS_URL")
    if request.param == "redis" and not url:
        pytest.skip("LIVEGATE_TEST_REDIS_URL unset")
    made: list[ResumeBuffer] = []

    def build(max_events: int, max_age: float) -> ResumeBuffer:
        buffer: ResumeBuffer = (
            RedisResume(url, max_events, max_age)
            if request.param == "redis" and url
            else MemoryResume(max_events, max_age)
        )
        made.append(buffer)
        return buffer

    yield build
    for buffer in made:
        await buffer.aclose()


def key() -> str:
    return f"test:{secrets.token_hex(6)}"


async def test_ids_are_ordered_and_a_message_is_recorded_once(make: Build) -> None:
    buffer = make(100, 60)
    k = key()
    first = await buffer.record(k, [("1", "a"), ("2", "b"), ("", "c")])
    again = await buffer.record(k, [("2", "b"), ("3", "d")])
    orders = [parse_id(e.id) for e in first]
    assert orders == sorted(orders) and len(set(orders)) == 3
    assert again[0].id == first[1].id  # known by its msg_id
    assert parse_id(again[1].id) > orders[-1]
    backlog = await buffer.since(k, first[0].id)
    assert [e.data for e in backlog.entries] == ["b", "c", "d"] and not backlog.gap
    assert [e.data for e in await buffer.tail(k, 2)] == ["c", "d"]


async def test_past_its_count_the_oldest_go_and_an_older_id_is_a_gap(make: Build) -> None:
    buffer = make(3, 60)
    k = key()
    entries = await buffer.record(k, [(str(n), str(n)) for n in range(1, 7)])
    backlog = await buffer.since(k, entries[0].id)
    assert backlog.gap and [e.data for e in backlog.entries] == ["4", "5", "6"]
    backlog = await buffer.since(k, entries[2].id)
    assert backlog.gap  # 3 went: whether anything came between is unknown
    backlog = await buffer.since(k, entries[3].id)
    assert not backlog.gap and [e.data for e in backlog.entries] == ["5", "6"]


async def test_past_its_age_the_events_go(make: Build) -> None:
    buffer = make(100, 1)
    k = key()
    [entry] = await buffer.record(k, [("1", "old")])
    deadline = time.monotonic() + 10
    while not (backlog := await buffer.since(k, entry.id)).gap:
        assert time.monotonic() < deadline, "the event outlived the buffer's age"
        await asyncio.sleep(0.1)
    assert backlog.entries == []
    assert await buffer.tail(k, 5) == []
