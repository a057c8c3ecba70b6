"""`GET /webcast/events` (WebSocket): one subscriber of a room's managed event stream.

The socket is accepted, then the query is read as the Euler WebSocket SDK 0.0.6 builds it
(events/options.py), the caller is authenticated (an access token in `Authorization: Bearer`
or `x-oauth-token`: the user's TikTok session connects; an API key in `apiKey` or `X-Api-Key`
alone: anonymously; `jwtKey`: a browser token from `POST /webcast/jwt`), its open streams are
counted, the room is looked up, and the subscriber joins the room's shared upstream
(events/hub.py). The first message is the room info, `{type: "roomInfo", data}` (the SDK's
`RoomInfoEvent`); then TikTok's push frames, or with `format=json` decoded events. Whatever
ends the stream closes the socket with the SDK's `ClientCloseCode` (events/codes.py); a token
or grant that dies closes it with 4401 (relay.py's `RelayRegistry` notices).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from livegate.config import Settings
from livegate.errors import LivegateError
from livegate.events.batch import EventBatch, dumps
from livegate.events.codes import CloseCode, Closing
from livegate.events.feed import Feeds, Watch
from livegate.events.hub import EventHub, Subscription, closing_for
from livegate.events.limits import Lease, Slot, StreamCounter
from livegate.events.options import StreamOptions, parse_options
from livegate.events.presence import Presence
from livegate.events.resume import make_resume
from livegate.ratelimit import client_address
from livegate.tiktok.errors import UpstreamError
from livegate.tiktok.room_stream import RoomStream
from livegate.tiktok.webcast import WebcastClient
from livegate.webcast.auth import Authenticator, Presented, Principal
from livegate.webcast.browser_tokens import BrowserTokens
from livegate.webcast.jwt import EventsJwtError, verify_events_jwt
from livegate.webcast.ratelimit import CONNECT, WebcastLimiter
from livegate.webcast.relay import Relay, RelayRegistry

log = logging.getLogger(__name__)

SCOPE = "webcast:fetch"
PRESENCE_TICK = 5.0  # seconds between looks for users who left, when events are quiet


def _bearer(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (conn.headers.get("x-oauth-token") or "").strip() or None


def _auth_closing(exc: LivegateError) -> Closing:
    if exc.status == 429:
        return Closing(CloseCode.TOO_MANY_CONNECTIONS, exc.error, exc)
    return Closing(CloseCode.INVALID_AUTH, exc.error, exc)


@dataclass(eq=False)
class Admission:
    """A caller let in: its credential, its open-stream slots, and (with a token) the
    registration that tells when the token or grant dies."""

    principal: Principal
    lease: Lease
    relay: Relay | None


@dataclass(frozen=True)
class Room:
    """What subscribing to a room's upstream needs: the hub's key and how to start one."""

    key: tuple[str, ...]
    stream: Callable[[], RoomStream]
    room_info: Callable[[], Awaitable[dict[str, Any]]]


class EventStreams:
    def __init__(
        self,
        settings: Settings,
        auth: Authenticator,
        limiter: WebcastLimiter,
        upstream: WebcastClient,
        relays: RelayRegistry,
        tokens: BrowserTokens,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.auth = auth
        self.limiter = limiter
        self.upstream = upstream
        self.relays = relays
        self.hub = EventHub()
        self.counter = StreamCounter(settings.redis_url)
        self.resume = make_resume(
            settings.redis_url, settings.events_resume_max_events, settings.events_resume_max_age
        )
        self.feeds = Feeds(self.resume, settings.events_resume_linger)

    async def aclose(self) -> None:
        await self.feeds.aclose()
        await self.hub.aclose()
        await self.counter.aclose()
        await self.resume.aclose()

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            await self._serve(ws)
        except Closing as exc:
            await _close(ws, exc)
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("event stream failed")
            await _close(ws, Closing(CloseCode.INTERNAL_SERVER_ERROR))

    async def _serve(self, ws: WebSocket) -> None:
        options = parse_options(ws.query_params.multi_items())
        admission = await self.admit(ws, options)
        try:
            room = await self.room(options, admission.principal)
            sub = await self.hub.subscribe(room.key, room.stream, room.room_info)
            try:
                await _Pump(ws, sub, options, admission.relay).run()
            finally:
                sub.close()
        finally:
            await self.dismiss(admission)

    async def admit(self, conn: HTTPConnection, options: StreamOptions) -> Admission:
        """The caller, checked (Closing 4401/4403 when refused), holding a slot of each of its
        credentials (4429 when one is full), counted as a connection start (4429 past it)."""
        principal, own_slots = await self._caller(conn, options)
        lease = await self.counter.acquire(self._slots(principal) + own_slots)
        relay: Relay | None = None
        if principal.caller is not None:
            relay = self.relays.add(principal.caller.digest, principal.caller.grant_id)
        admission = Admission(principal, lease, relay)
        try:
            await self.limiter.hit(CONNECT, principal.credentials())
        except LivegateError as exc:
            await self.dismiss(admission)
            raise _auth_closing(exc) from None
        except BaseException:
            await self.dismiss(admission)
            raise
        return admission

    async def dismiss(self, admission: Admission) -> None:
        if admission.relay is not None:
            self.relays.discard(admission.relay)
        await self.counter.release(admission.lease)

    async def _caller(
        self, conn: HTTPConnection, options: StreamOptions
    ) -> tuple[Principal, list[Slot]]:
        """The caller, and the slots of its credential beyond its API key's and grant's."""
        if options.jwt_key is not None:
            return await self._jwt_caller(options.jwt_key, options.unique_id)
        presented = Presented(
            token=_bearer(conn),
            api_key=options.api_key or (conn.headers.get("x-api-key") or "").strip() or None,
            cookie_header=None,
            address=client_address(conn),
        )
        try:
            return await self.auth.authenticate(presented, [SCOPE], with_session=True), []
        except LivegateError as exc:
            raise _auth_closing(exc) from None

    async def _jwt_caller(self, jwt_key: str, unique_id: str) -> tuple[Principal, list[Slot]]:
        """A browser token (POST /webcast/jwt): 4401 when it is not valid (any instance's
        server key verifies it), 4403 when it does not name this creator; checked against
        the database like any credential; at most its `max_sockets` open at once."""
        try:
            claims = verify_events_jwt(self.settings, jwt_key)
        except EventsJwtError as exc:
            raise Closing(CloseCode.INVALID_AUTH, str(exc)) from None
        if not claims.grants(unique_id):
            raise Closing(CloseCode.NO_PERMISSION, f"the token does not grant @{unique_id}")
        try:
            principal = await self.tokens.principal(claims)
        except LivegateError as exc:
            raise _auth_closing(exc) from None
        if principal.caller is not None and SCOPE not in principal.caller.scopes:
            raise Closing(CloseCode.INVALID_AUTH, f"insufficient_scope: needs {SCOPE}")
        return principal, [Slot(f"jwt:{claims.jti}", claims.max_sockets)]

    def _slots(self, principal: Principal) -> list[Slot]:
        slots = []
        if principal.api_key is not None:
            name = f"api_key:{principal.api_key.ident}"
            slots.append(Slot(name, self.settings.events_max_streams_per_key))
        if principal.caller is not None:
            name = f"grant:{principal.caller.grant_id}"
            slots.append(Slot(name, self.settings.events_max_streams_per_grant))
        return slots

    def watch(self, principal: Principal) -> Watch | None:
        """For a feed (events/feed.py) opened by `principal`: when its token or grant dies."""
        if principal.caller is None:
            return None
        relay = self.relays.add(principal.caller.digest, principal.caller.grant_id)
        return Watch(relay.ended, lambda: self.relays.discard(relay))

    async def room(self, options: StreamOptions, principal: Principal) -> Room:
        """The room `options` name, as the caller sees it (Closing 4404 when not live)."""
        jar = principal.jar if principal.has_session else None
        try:
            room_id = await self.upstream.room_id_for(options.unique_id, cookies=jar)
        except UpstreamError as exc:
            raise closing_for(exc, "fetch") from None
        if principal.caller is not None:
            key: tuple[str, ...] = (room_id, "grant", str(principal.caller.grant_id))
        else:
            ident = principal.api_key.ident if principal.api_key else "anonymous"
            key = (room_id, "api_key", ident)

        async def room_info() -> dict[str, Any]:
            info = await self.upstream.room_info(room_id, cookies=jar)
            if info.get("status") == 4:  # TikTok's "ended"
                raise Closing(CloseCode.NOT_LIVE, "the LIVE has ended")
            return info

        return Room(key, lambda: RoomStream(self.upstream, room_id, cookies=jar), room_info)


class _Pump:
    """Sends one subscription to its socket until something ends it."""

    def __init__(
        self, ws: WebSocket, sub: Subscription, options: StreamOptions, relay: Relay | None
    ) -> None:
        self.ws = ws
        self.sub = sub
        self.options = options
        self.relay = relay
        features = options.features
        self.presence = (
            Presence(features.synthetic_presence_leave_after)
            if options.json and features.synthetic_presence
            else None
        )

    async def run(self) -> None:
        await self._send_events([{"type": "roomInfo", "data": self.sub.room_info}])
        waits = [self._client(), self._deliver()]
        if self.relay is not None:
            waits.append(self._revoked(self.relay))
        await _first_of(waits)

    async def _client(self) -> None:
        """Reads (and ignores) what the client sends, until it goes away."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))

    @staticmethod
    async def _revoked(relay: Relay) -> None:
        await relay.ended.wait()
        raise Closing(CloseCode.INVALID_AUTH, "the authorization is no longer active")

    async def _deliver(self) -> None:
        idle = _IdleAlarm(self.sub, self.options.features.close_inactive_after)
        try:
            while True:
                item = await self._next()
                if item is None:
                    continue
                if isinstance(item, Closing):
                    raise item
                idle.touch()
                await self._send(item)
        finally:
            idle.cancel()

    async def _next(self) -> EventBatch | Closing | None:
        """What the subscription brings next; None when a look for users who left (synthetic
        presence) was due first, and taken."""
        if self.presence is None:
            return await self.sub.next()
        try:
            async with asyncio.timeout(PRESENCE_TICK):
                return await self.sub.next()
        except TimeoutError:
            await self._send_events(self.presence.leaves())
            return None

    async def _send(self, batch: EventBatch) -> None:
        if not self.options.json:
            await self.ws.send_bytes(batch.push_frame())
            return
        if self.presence is None:
            for text in batch.texts(self.options.features.bundle_events):
                await self.ws.send_text(text)
            return
        events = batch.events()
        await self._send_events(self.presence.seen(events) + events, batch.at_ms)

    async def _send_events(self, events: list[dict[str, Any]], at_ms: int | None = None) -> None:
        if not events:
            return
        if self.options.json and self.options.features.bundle_events:
            timestamp = at_ms if at_ms is not None else int(time.time() * 1000)
            await self.ws.send_text(dumps({"timestamp": timestamp, "messages": events}))
            return
        for event in events:
            await self.ws.send_text(dumps(event))


class _IdleAlarm:
    """Ends a subscription with 4006 once nothing came for `after` seconds. One timer per quiet
    spell, re-armed when it finds that something came: a timeout around each wait cost a timer
    per subscriber per event (docs/benchmarks.md, "Managed event stream")."""

    def __init__(self, sub: Subscription, after: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.sub = sub
        self.after = after
        self.last = self.loop.time()
        self.handle = self.loop.call_at(self.last + after, self._check)

    def touch(self) -> None:
        self.last = self.loop.time()

    def _check(self) -> None:
        due = self.last + self.after
        if self.loop.time() >= due:
            self.sub.offer(Closing(CloseCode.NO_MESSAGES_TIMEOUT))
        else:
            self.handle = self.loop.call_at(due, self._check)

    def cancel(self) -> None:
        self.handle.cancel()


async def _first_of(waits: list[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines until the first one ends; cancel the others; raise what it raised."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


async def _close(ws: WebSocket, closing: Closing) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=int(closing.code), reason=closing.reason)
