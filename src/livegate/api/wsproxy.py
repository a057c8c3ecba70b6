"""livegate's WebSocket proxy: the push connection of a fetch signed with the user's session.

TikTok binds the push WebSocket of a fetch made with a session to that session: the handshake
must carry the same `sessionid` cookie, or TikTok answers HTTP 200 + `handshake-msg: illegal
secret key`. The session must never leave livegate, so when a fetch was signed with the user's
stored session, `push_server` in the result is rewritten to
`ws(s)://<public host>/webcast/ws/<ticket>/`. The client connects here with the usual query;
livegate opens the original push server with the same query, the client's cookies plus the
session cookies, and relays frames both ways until either side closes.

Tickets: random, held only in this process's memory (with the upstream URL and the session
jar), single use, valid `TICKET_TTL` seconds to start, bound to the grant: a grant that is no
longer active at handshake time (revoked, login_required) gets a refusal, and an open relay is
closed when its grant stops being active (checked every `GRANT_RECHECK` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets
from anyio import to_thread
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from livegate.tiktok.cookies import cookie_header
from livegate.tiktok.http import DEFAULT_USER_AGENT

# Re-exported: api/service.py takes the push_server splice from here.
from livegate.tiktok.protobuf import rewrite_push_server as rewrite_push_server

log = logging.getLogger(__name__)

TICKET_TTL = 60.0
GRANT_RECHECK = 15.0
OPEN_TIMEOUT = 4.0
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


async def _deny(ws: WebSocket, status: int, handshake_status: str, message: str) -> None:
    # TikTok's way of refusing an upgrade: HTTP 200 + handshake-status / handshake-msg.
    headers = {"handshake-status": handshake_status, "handshake-msg": message}
    await ws.send_denial_response(Response(b"", status_code=status, headers=headers))


class WebSocketProxy:
    def __init__(self, tickets: TicketStore, token_usable: Callable[[str, int], bool]) -> None:
        self.tickets = tickets
        self.token_usable = token_usable

    async def handle(self, ws: WebSocket, ticket_id: str) -> None:
        ticket = self.tickets.take(ticket_id)
        if ticket is None:
            await _deny(ws, 200, "417", "livegate: unknown, used or expired WebSocket ticket")
            return
        if not await to_thread.run_sync(self.token_usable, ticket.token_digest, ticket.grant_id):
            await _deny(ws, 200, "415", "livegate: the authorization is no longer active")
            return
        query = ws.scope.get("query_string", b"").decode("latin-1")
        url = ticket.upstream + ("?" + query if query else "")
        cookies = {**dict(ws.cookies), **ticket.cookies}
        headers = {
            "Cookie": cookie_header(cookies),
            "User-Agent": ws.headers.get("user-agent") or DEFAULT_USER_AGENT,
        }
        offered = list(ws.scope.get("subprotocols") or [])
        try:
            upstream = await ws_connect(
                url,
                subprotocols=offered or None,  # type: ignore[arg-type]
                additional_headers=headers,
                open_timeout=OPEN_TIMEOUT,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=2,
                max_size=None,
                compression=None,
                proxy=None,
            )
        except websockets.exceptions.InvalidStatus as exc:
            resp = exc.response
            log.info("upstream refused the WebSocket handshake (HTTP %s)", resp.status_code)
            await _deny(
                ws,
                resp.status_code if resp.status_code in (200, 400, 403, 404) else 200,
                resp.headers.get("handshake-status", str(resp.status_code)),
                resp.headers.get("handshake-msg", "upstream refused the WebSocket"),
            )
            return
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.info("upstream WebSocket unreachable: %s", type(exc).__name__)
            await _deny(ws, 200, "502", "livegate: TikTok's push server is unreachable")
            return
        accept_headers = []
        options = upstream.response.headers.get("handshake-options") if upstream.response else None
        if options:
            accept_headers.append((b"handshake-options", options.encode("latin-1")))
        await ws.accept(subprotocol=upstream.subprotocol, headers=accept_headers)
        await self._relay(ws, upstream, ticket)

    async def _relay(self, ws: WebSocket, upstream: ClientConnection, ticket: Ticket) -> None:
        async def client_to_upstream() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is not None:
                    await upstream.send(data)
                elif message.get("text") is not None:
                    await upstream.send(message["text"])

        async def upstream_to_client() -> None:
            async for message in upstream:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)

        async def watch_grant() -> None:
            while True:
                await asyncio.sleep(GRANT_RECHECK)
                if not await to_thread.run_sync(
                    self.token_usable, ticket.token_digest, ticket.grant_id
                ):
                    return

        tasks = [
            asyncio.create_task(client_to_upstream()),
            asyncio.create_task(upstream_to_client()),
            asyncio.create_task(watch_grant()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await upstream.close()
            with contextlib.suppress(Exception, WebSocketDisconnect):
                await ws.close(code=code if code in (1000, 1001) or 3000 <= code < 5000 else 1000)
