"""livegate's WebSocket relay: the push connection of a fetch signed with the user's session.

TikTok binds the push WebSocket of such a fetch to the session, and the session must never
leave livegate, so the fetch result names `/webcast/ws/<ticket>/` (tickets.py) instead. The
client connects there with the usual query; livegate opens TikTok's push server with the same
query, the client's cookies plus the session's (tiktok/push.py), and relays frames both ways
until either side closes.

A token or grant that is no longer usable at handshake time (revoked, expired,
login_required) gets a refusal, and an open relay is closed with `CLOSE_REVOKED` when its
token or grant dies (`RelayRegistry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from anyio import to_thread
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from livegate import metrics
from livegate.db.engine import Database
from livegate.db.models import AccessToken, Grant, utcnow
from livegate.oauth import tokens
from livegate.tiktok.push import PushRefused, PushSocket, PushUnreachable, open_push
from livegate.webcast.tickets import Ticket, TicketStore

log = logging.getLogger(__name__)

# The Euler WebSocket API's INVALID_AUTH. TikTokLive raises ConnectionClosedError, with this
# code and the reason, for any close but 1000/1001 (which it takes for the stream's normal
# end), so the app learns that its access ended rather than the LIVE.
CLOSE_REVOKED = 4401
REVOKED_REASON = "livegate: the authorization is no longer active"
RECHECK_EVERY = 1.0  # seconds between looks for tokens that died elsewhere (another process)
RECHECK_BATCH = 500  # digests per statement


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
        metrics.relay_opened()
        return relay

    def discard(self, relay: Relay) -> None:
        if relay in self._open:
            metrics.relay_closed()
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


class WebSocketRelay:
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
        ticket = await to_thread.run_sync(self.tickets.take, ticket_id)
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
        try:
            upstream = await open_push(
                ticket.upstream + ("?" + query if query else ""),
                cookies={**dict(ws.cookies), **ticket.cookies},
                user_agent=ws.headers.get("user-agent"),
                subprotocols=list(ws.scope.get("subprotocols") or []),
            )
        except PushRefused as exc:
            status = exc.status if exc.status in (200, 400, 403, 404) else 200
            await _deny(ws, status, exc.handshake_status, exc.handshake_msg)
            return
        except PushUnreachable:
            await _deny(ws, 200, "502", "livegate: TikTok's push server is unreachable")
            return
        options = upstream.handshake_options
        accept_headers = [(b"handshake-options", options.encode("latin-1"))] if options else []
        await ws.accept(subprotocol=upstream.subprotocol, headers=accept_headers)
        await self._relay(ws, upstream, relay)

    async def _relay(self, ws: WebSocket, upstream: PushSocket, relay: Relay) -> None:
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
            async for message in upstream.frames():
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)

        try:
            await _first_of(client_to_upstream(), upstream_to_client(), relay.ended.wait())
        finally:
            await self._close(ws, upstream, relay)

    @staticmethod
    async def _close(ws: WebSocket, upstream: PushSocket, relay: Relay) -> None:
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


async def _first_of(*waits: Awaitable[object]) -> None:
    """Run the coroutines until the first one ends; cancel and await the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
