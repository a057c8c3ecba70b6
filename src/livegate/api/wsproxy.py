"""livegate's WebSocket proxy: the push connection of a fetch signed with the user's session.

TikTok binds the push WebSocket of a fetch made with a session to that session: the handshake
must carry the same `sessionid` cookie, or TikTok answers HTTP 200 + `handshake-msg: illegal
secret key`. The session must never leave livegate, so when a fetch was signed with the user's
stored session, `push_server` in the result is rewritten to
`ws(s)://<public host>/webcast/ws/<ticket>/`. The client connects here with the usual query;
livegate opens the original push server with the same query, the client's cookies plus the
session cookies, and relays frames both ways until either side closes.

Tickets: random, held only in this process's memory (with the upstream URL and the session
jar), single use, valid `TICKET_TTL` seconds to start, bound to the grant and the access
token: a token or grant that is no longer usable at handshake time (revoked, expired,
login_required) gets a refusal, and an open relay is closed with `CLOSE_REVOKED` when its
token or grant dies (`RelayRegistry`).
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
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from livegate.db.engine import Database
from livegate.db.models import AccessToken, Grant, utcnow
from livegate.oauth import tokens
from livegate.tiktok.cookies import cookie_header
from livegate.tiktok.http import DEFAULT_USER_AGENT

# Re-exported: api/service.py takes the push_server splice from here.
from livegate.tiktok.protobuf import rewrite_push_server as rewrite_push_server

log = logging.getLogger(__name__)

TICKET_TTL = 60.0
OPEN_TIMEOUT = 4.0
MAX_TICKETS = 100_000
# The Euler WebSocket API's INVALID_AUTH. TikTokLive raises ConnectionClosedError, with this
# code and the reason, for any close but 1000/1001 (which it takes for the stream's normal
# end), so the app learns that its access ended rather than the LIVE.
CLOSE_REVOKED = 4401
REVOKED_REASON = "livegate: the authorization is no longer active"
RECHECK_EVERY = 1.0  # seconds between looks for tokens that died elsewhere (another process)
RECHECK_BATCH = 500  # digests per statement


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


_LIVE_TOKENS = (
    select(AccessToken.token_digest)
    .join(Grant, Grant.id == AccessToken.grant_id)
    .where(
        AccessToken.token_digest.in_(bindparam("digests", expanding=True)),
        AccessToken.revoked_at.is_(None),
        AccessToken.expires_at > bindparam("now"),
        Grant.status == "active",
    )
)


@dataclass(eq=False)
class Relay:
    """One open relay, as the registry knows it."""

    token_digest: str
    grant_id: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class RelayRegistry:
    """The relays open in this process, so that each closes when its token or grant dies.

    - Revoked by this process (`/tiktok/oauth/revoke`, `/account`, the dashboard, a replayed
      code or refresh token, login_required): `oauth/tokens.py` notes what it revoked in the
      database session, and once that session commits, the relays on those tokens and grants
      end at once.
    - Revoked by another process or instance sharing the database, or expired: every
      `every` seconds, one query reads which of the open relays' tokens are still usable,
      and the others end. Only the database is shared; no timer per relay.
    """

    def __init__(self, database: Database, every: float = RECHECK_EVERY) -> None:
        self.db = database
        self.every = every
        self._open: set[Relay] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, token_digest: str, grant_id: int) -> Relay:
        relay = Relay(token_digest, grant_id)
        self._open.add(relay)
        return relay

    def discard(self, relay: Relay) -> None:
        self._open.discard(relay)

    def _end(self, token_digests: set[str], grant_ids: set[int]) -> None:
        for relay in list(self._open):
            if relay.token_digest in token_digests or relay.grant_id in grant_ids:
                relay.ended.set()

    def _committed(self, session: Session) -> None:
        # Runs in whichever thread committed; the relays belong to the event loop.
        revoked = tokens.take_revoked(session)
        if revoked is not None and self._open and self._loop is not None:
            self._loop.call_soon_threadsafe(self._end, revoked.token_digests, revoked.grant_ids)

    def _rolled_back(self, session: Session) -> None:
        tokens.take_revoked(session)  # nothing was revoked after all

    async def watch(self) -> None:
        """Runs for the app's life."""
        self._loop = asyncio.get_running_loop()
        sessions = self.db.sessionmaker
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", self._rolled_back)
        try:
            while True:
                await asyncio.sleep(self.every)
                await self.recheck()
        finally:
            event.remove(sessions, "after_commit", self._committed)
            event.remove(sessions, "after_rollback", self._rolled_back)

    async def recheck(self) -> None:
        digests = {relay.token_digest for relay in self._open}
        if not digests:
            return
        try:
            live = await to_thread.run_sync(self._live, sorted(digests))
        except SQLAlchemyError as exc:  # the next look tries again
            log.warning("could not recheck the open relays' tokens: %s", type(exc).__name__)
            return
        self._end(digests - live, set())

    def _live(self, digests: list[str]) -> set[str]:
        live: set[str] = set()
        now = utcnow()
        with self.db.reads.connect() as conn:
            for start in range(0, len(digests), RECHECK_BATCH):
                batch = digests[start : start + RECHECK_BATCH]
                live.update(conn.execute(_LIVE_TOKENS, {"digests": batch, "now": now}).scalars())
        return live


async def _deny(ws: WebSocket, status: int, handshake_status: str, message: str) -> None:
    # TikTok's way of refusing an upgrade: HTTP 200 + handshake-status / handshake-msg.
    headers = {"handshake-status": handshake_status, "handshake-msg": message}
    await ws.send_denial_response(Response(b"", status_code=status, headers=headers))


class WebSocketProxy:
    def __init__(
        self,
        tickets: TicketStore,
        token_usable: Callable[[str, int], bool],
        relays: RelayRegistry,
    ) -> None:
        self.tickets = tickets
        self.token_usable = token_usable
        self.relays = relays

    async def handle(self, ws: WebSocket, ticket_id: str) -> None:
        ticket = self.tickets.take(ticket_id)
        if ticket is None:
            await _deny(ws, 200, "417", "livegate: unknown, used or expired WebSocket ticket")
            return
        # Registered before the token is checked: a revocation committed from here on ends it.
        relay = self.relays.add(ticket.token_digest, ticket.grant_id)
        try:
            await self._open(ws, ticket, relay)
        finally:
            self.relays.discard(relay)

    async def _open(self, ws: WebSocket, ticket: Ticket, relay: Relay) -> None:
        if not await to_thread.run_sync(self.token_usable, ticket.token_digest, ticket.grant_id):
            await _deny(ws, 200, "415", REVOKED_REASON)
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
        await self._relay(ws, upstream, relay)

    async def _relay(self, ws: WebSocket, upstream: ClientConnection, relay: Relay) -> None:
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

        tasks = [
            asyncio.create_task(client_to_upstream()),
            asyncio.create_task(upstream_to_client()),
            asyncio.create_task(relay.ended.wait()),
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
            reason = ""
            if relay.ended.is_set():
                code, reason = CLOSE_REVOKED, REVOKED_REASON
            elif not (code in (1000, 1001) or 3000 <= code < 5000):
                code = 1000
            with contextlib.suppress(Exception, WebSocketDisconnect):
                await ws.close(code=code, reason=reason)
