"""What the hub's upstreams and the SSE feeds have in common: a member's bounded inbox, and
joining a shared source once it is ready."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from livegate.events.codes import CloseCode, Closing

T = TypeVar("T")


class Inbox(Generic[T]):
    """What one member has yet to take: items, then at most one `Closing`. A member that lets
    `size` items wait has fallen behind: what waits goes, and it is ended with 1011."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[T | Closing] = asyncio.Queue(size)
        self.ended = False

    def offer(self, item: T | Closing) -> None:
        if self.ended:
            return
        if isinstance(item, Closing):
            self.ended = True
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.ended = True
            while not self.queue.empty():
                self.queue.get_nowait()
            detail = "the subscriber fell behind"
            self.queue.put_nowait(Closing(CloseCode.INTERNAL_SERVER_ERROR, detail))

    async def next(self) -> T | Closing:
        return await self.queue.get()


class Member(Protocol):
    def close(self) -> None: ...


M = TypeVar("M", bound=Member)
M_co = TypeVar("M_co", bound=Member, covariant=True)


class Source(Protocol[M_co]):
    ready: asyncio.Event
    failure: Closing | None

    def join(self) -> M_co: ...


async def join_when_ready(source: Source[M]) -> M:
    """A new member of `source`, once the source is ready; the `Closing` it failed with is
    raised instead (and the member closed)."""
    member = source.join()
    try:
        await source.ready.wait()
    except asyncio.CancelledError:
        member.close()
        raise
    if source.failure is not None:
        member.close()
        raise source.failure
    return member


async def cancel_all(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
