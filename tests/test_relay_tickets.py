"""The WebSocket relay's ticket store (webcast/tickets.py): ids, single use, held off the GC."""

from __future__ import annotations


def test_ticket_ids_are_distinct_hex_across_batches() -> None:
    from livegate.webcast.tickets import _RANDOM_BATCH, TICKET_BYTES, _random_id

    ids = [_random_id() for _ in range(3 * _RANDOM_BATCH // TICKET_BYTES)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 2 * TICKET_BYTES and int(i, 16) >= 0 for i in ids)


def test_held_tickets_leave_the_garbage_collector_and_come_back_whole() -> None:
    import gc

    from livegate.webcast.tickets import Ticket, TicketStore

    store = TicketStore()
    jar = {"sessionid": "s3cret", "tt-target-idc": "useast5"}
    ids = [store.issue(f"wss://push/{i}", 7, "d" * 64, jar) for i in range(500)]
    gc.collect()
    # A busy gateway holds tens of thousands; tracked, every full collection walks them.
    assert sum(gc.is_tracked(held) for held in store._tickets.values()) == 0
    taken = store.take(ids[3])
    assert taken == Ticket("wss://push/3", 7, "d" * 64, jar)
    assert "s3cret" not in repr(taken)
    assert store.take(ids[3]) is None  # single use
