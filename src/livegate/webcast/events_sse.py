"""`GET /webcast/rooms/{unique_id}/events`: a room's managed event stream as Server-Sent Events.

The same caller checks as the WebSocket (webcast/events_socket.py: an access token, an API
key, or a browser's `jwtKey`; open-stream slots; a connection start), then the room's feed
(events/feed.py: one hub subscriber per room and credential, whose events the resume buffer
numbers). What is refused before the stream starts is an HTTP error `{code, message, error}`;
once it runs, the stream is:

    data: {"type": "roomInfo", "data": {...}}          (no id: it is not resumable)
    event: gap                                         (only when Last-Event-ID is too old)
    data: {"lastEventId": "...", "oldestId": "..."|null}
    id: 1733580000000-0
    data: {"type": "WebcastChatMessage", "data": {...}}
    : keepalive                                        (every `events_sse_keepalive` s)
    event: error                                       (last: why it ended; the WebSocket's
    data: {"code": 4005, "message": "..."}              close codes)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from livegate.errors import LivegateError
from livegate.events.batch import dumps
from livegate.events.codes import CloseCode, Closing
from livegate.events.feed import Listener
from livegate.events.options import StreamOptions, parse_options
from livegate.events.resume import Backlog, BadEventId, parse_id
from livegate.limits import ENDLESS
from livegate.webcast.events_socket import Admission, EventStreams
from livegate.webcast.relay import Relay

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
RECENT = 50  # events a new subscriber (no Last-Event-ID) gets first, as on the WebSocket
KEEPALIVE = b": keepalive\n\n"
# Browsers open the stream from the app's own origin, with the jwtKey in the URL (no cookie,
# no header): any origin may read it. Only this route answers so.
CORS = {"Access-Control-Allow-Origin": "*"}
HEADERS = {**CORS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
CREDENTIAL_PARAMS = ("apiKey", "jwtKey")

# Before the stream starts, a close code is answered as an HTTP status and error code.
_REFUSALS: dict[CloseCode, tuple[int, str]] = {
    CloseCode.INVALID_OPTIONS: (400, "invalid_request"),
    CloseCode.INVALID_AUTH: (401, "invalid_token"),
    CloseCode.NO_PERMISSION: (403, "creator_not_granted"),
    CloseCode.NOT_LIVE: (404, "user_offline"),
    CloseCode.STREAM_END: (404, "user_offline"),
    CloseCode.TOO_MANY_CONNECTIONS: (429, "too_many_streams"),
    CloseCode.WEBCAST_FETCH_ERROR: (502, "upstream_error"),
    CloseCode.ROOM_INFO_FETCH_ERROR: (502, "upstream_error"),
    CloseCode.TIKTOK_CLOSED_CONNECTION: (502, "upstream_error"),
}
# TikTok's answers that a Closing's detail names, with their webcast API status.
_NAMED = {
    "user_offline": 404,
    "user_not_found": 404,
    "room_not_found": 404,
    "age_restricted": 403,
    "private_room": 403,
}


def refusal(closing: Closing) -> LivegateError:
    """The HTTP answer for a stream refused before it started."""
    if isinstance(closing.refusal, LivegateError):
        found = closing.refusal
        return LivegateError(
            found.status,
            found.error,
            found.message,
            headers={**found.headers, **CORS},
            extra=found.extra,
        )
    status, error = _REFUSALS.get(closing.code, (500, "server_error"))
    named = closing.detail.split(":", 1)[0]
    if named in _NAMED:
        status, error = _NAMED[named], named
    return LivegateError(status, error, closing.reason, headers=CORS)


def _frame(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    head = (f"event: {event}\n" if event else "") + (f"id: {id}\n" if id else "")
    return f"{head}data: {data}\n\n".encode()


def _error(closing: Closing) -> bytes:
    return _frame(dumps({"code": int(closing.code), "message": closing.reason}), event="error")


class EventStreamResponse(StreamingResponse):
    """A streaming answer that runs `cleanup` however it ends, even when the client left
    before its body began (a generator that never started would never run its own)."""

    media_type = MEDIA_TYPE

    def __init__(
        self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(content, media_type=MEDIA_TYPE, headers=HEADERS)
        self.cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.cleanup()


def sse_options(request: Request, unique_id: str) -> tuple[StreamOptions, str | None]:
    """The stream's options (as the WebSocket reads them: LivegateError 400 when unusable)
    and the id to resume after (the Last-Event-ID header, or `lastEventId`)."""
    items = [("uniqueId", unique_id), ("format", "json")]
    items += [(k, v) for k, v in request.query_params.multi_items() if k in CREDENTIAL_PARAMS]
    try:
        options = parse_options(items)
    except Closing as exc:
        raise refusal(exc) from None
    resume = request.query_params.getlist("lastEventId")
    header = request.headers.getlist("last-event-id")
    if len(resume) > 1 or len(header) > 1:
        raise LivegateError(400, "invalid_request", "Last-Event-ID given more than once.")
    last_id = (header or resume or [""])[0].strip() or None
    if last_id is not None:
        try:
            parse_id(last_id)
        except BadEventId:
            raise LivegateError(
                400, "invalid_request", "Last-Event-ID is not an id this stream sent.", headers=CORS
            ) from None
    return options, last_id


class SseStream:
    """One subscriber's stream, from the checks to its last event."""

    def __init__(self, streams: EventStreams, keepalive: float) -> None:
        self.streams = streams
        self.keepalive = keepalive
        # Set by `drain`: every open stream ends (no error event: the client reconnects with
        # Last-Event-ID, to whichever instance still serves).
        self.draining = asyncio.Event()

    def drain(self) -> None:
        """End every open stream now, as the server stops: an HTTP server waits for streaming
        answers to finish, and these never would."""
        self.draining.set()

    async def open(self, request: Request, unique_id: str) -> EventStreamResponse:
        options, last_id = sse_options(request, unique_id)
        try:
            admission = await self.streams.admit(request, options)
        except Closing as exc:
            raise refusal(exc) from None
        try:
            listener = await self._listen(options, admission)
        except BaseException:
            await self.streams.dismiss(admission)
            raise
        try:
            backlog = await self._backlog(listener, last_id)
        except BaseException:
            listener.close()
            await self.streams.dismiss(admission)
            raise

        async def cleanup() -> None:
            listener.close()
            await self.streams.dismiss(admission)

        body = self._events(listener, backlog, last_id, admission.relay)
        request.scope[ENDLESS] = True
        return EventStreamResponse(body, cleanup)

    async def _listen(self, options: StreamOptions, admission: Admission) -> Listener:
        streams = self.streams
        try:
            room = await streams.room(options, admission.principal)
            return await streams.feeds.listen(
                room.key,
                ":".join(room.key),
                lambda: streams.hub.subscribe(room.key, room.stream, room.room_info),
                lambda: streams.watch(admission.principal),
            )
        except Closing as exc:
            raise refusal(exc) from None

    async def _backlog(self, listener: Listener, last_id: str | None) -> Backlog:
        buffer = self.streams.resume
        try:
            if last_id is None:
                return Backlog(await buffer.tail(listener.buffer_key, RECENT))
            return await buffer.since(listener.buffer_key, last_id)
        except RedisError:
            log.warning("the resume buffer is unreachable")
            raise LivegateError(
                503, "temporarily_unavailable", "Try again shortly.", headers=CORS
            ) from None

    async def _events(
        self, listener: Listener, backlog: Backlog, last_id: str | None, relay: Relay | None
    ) -> AsyncIterator[bytes]:
        yield _frame(dumps({"type": "roomInfo", "data": listener.room_info}))
        if backlog.gap:
            oldest = backlog.entries[0].id if backlog.entries else None
            yield _frame(dumps({"lastEventId": last_id, "oldestId": oldest}), event="gap")
        sent = parse_id(last_id) if last_id else (0, 0)
        for entry in backlog.entries:
            if entry.order > sent:
                sent = entry.order
                yield _frame(entry.data, id=entry.id)
        getter: asyncio.Future[Any] | None = None
        revoked = asyncio.ensure_future(relay.ended.wait()) if relay is not None else None
        draining = asyncio.ensure_future(self.draining.wait())
        try:
            while True:
                getter = getter or asyncio.ensure_future(listener.next())
                waits = {getter, draining} if revoked is None else {getter, draining, revoked}
                done, _ = await asyncio.wait(
                    waits, timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if draining in done:
                    return
                if revoked is not None and revoked in done:
                    detail = "the authorization is no longer active"
                    yield _error(Closing(CloseCode.INVALID_AUTH, detail))
                    return
                if getter not in done:
                    yield KEEPALIVE
                    continue
                item, getter = getter.result(), None
                if isinstance(item, Closing):
                    yield _error(item)
                    return
                if item.order > sent:
                    sent = item.order
                    yield _frame(item.data, id=item.id)
        finally:
            for task in (getter, revoked, draining):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
