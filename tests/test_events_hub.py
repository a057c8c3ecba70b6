"""events/hub.py's subscriber queues: bounded, and a subscriber that falls behind is ended
(1011) rather than holding the room's events in memory without limit."""

from __future__ import annotations

from typing import Any, cast

from livegate.events.batch import EventBatch
from livegate.events.codes import CloseCode, Closing
from livegate.events.hub import QUEUE_BATCHES, Subscription


async def test_a_subscriber_that_falls_behind_is_ended_with_1011() -> None:
    sub = Subscription(upstream=cast(Any, None))
    for seq in range(QUEUE_BATCHES):
        sub.offer(EventBatch(seq, [], "", ""))
    assert sub.queue.qsize() == QUEUE_BATCHES and not sub.ended
    sub.offer(EventBatch(QUEUE_BATCHES, [], "", ""))  # one more than it may hold
    assert sub.ended and sub.queue.qsize() == 1
    item = await sub.next()
    assert isinstance(item, Closing) and item.code is CloseCode.INTERNAL_SERVER_ERROR
    assert "fell behind" in item.reason
    sub.offer(EventBatch(0, [], "", ""))  # nothing more is queued once it is ended
    assert sub.queue.empty()
