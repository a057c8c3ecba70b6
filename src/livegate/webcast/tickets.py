"""Relay tickets: what a session-signed fetch hands the client instead of TikTok's push server.

`push_server` in such a fetch result is rewritten to `ws(s)://<public host>/webcast/ws/<ticket>/`
(webcast/relay.py serves it). A ticket is random, held only in this process's memory with the
upstream URL and the session jar, single use, valid `TICKET_TTL` seconds to start, and bound
to the grant and the access token whose fetch issued it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

TICKET_TTL = 60.0
MAX_TICKETS = 100_000


@dataclass(frozen=True)
class Ticket:
    upstream: str  # the push_server TikTok named
    grant_id: int
    token_digest: str  # the access token whose fetch issued the ticket
    cookies: dict[str, str] = field(repr=False)  # the session jar the fetch was signed with


# How the store holds a ticket until it is taken: (created, upstream, grant_id, token_digest,
# the jar as JSON). A plain tuple of strings and numbers, which the garbage collector stops
# tracking at its first pass: a busy gateway holds tens of thousands of tickets (one per fetch,
# for TICKET_TTL), and held as dataclasses with a dict each, every full collection walked
# them all (8.6-12.6 ms pauses at 64 concurrent fetches). A tuple subclass (NamedTuple) would
# stay tracked.
_Held = tuple[float, str, int, str, str]


TICKET_BYTES = 24
_RANDOM_BATCH = TICKET_BYTES * 256
_random = bytearray()


def _random_id() -> str:
    """TICKET_BYTES from the OS's CSPRNG as hex. The bytes are drawn in batches: one
    getrandom call per ticket was the costliest step of a token fetch at one poll per 100 ms."""
    if len(_random) < TICKET_BYTES:
        _random[:] = os.urandom(_RANDOM_BATCH)
    chunk = _random[-TICKET_BYTES:]
    del _random[-TICKET_BYTES:]
    return chunk.hex()


# A forked child must not hand out the parent's remaining bytes again.
os.register_at_fork(after_in_child=_random.clear)


class TicketStore:
    def __init__(self, ttl: float = TICKET_TTL) -> None:
        self.ttl = ttl
        self._tickets: dict[str, _Held] = {}

    def issue(
        self, upstream: str, grant_id: int, token_digest: str, cookies: dict[str, str]
    ) -> str:
        self._prune()
        ticket = _random_id()
        self._tickets[ticket] = (
            time.monotonic(),
            upstream,
            grant_id,
            token_digest,
            json.dumps(cookies),
        )
        return ticket

    def take(self, ticket: str) -> Ticket | None:
        held = self._tickets.pop(ticket, None)  # single use, whatever happens next
        if held is None or time.monotonic() - held[0] > self.ttl:
            return None
        _created, upstream, grant_id, token_digest, jar = held
        return Ticket(upstream, grant_id, token_digest, json.loads(jar))

    def _prune(self) -> None:
        # Insertion order is creation order: expired tickets are always at the front.
        cutoff = time.monotonic() - self.ttl
        tickets = self._tickets
        while tickets:
            oldest = next(iter(tickets))
            if tickets[oldest][0] >= cutoff and len(tickets) < MAX_TICKETS:
                break
            del tickets[oldest]


def ws_base(public_url: str) -> str:
    if public_url.startswith("https://"):
        return "wss://" + public_url[len("https://") :]
    return "ws://" + public_url.removeprefix("http://")
