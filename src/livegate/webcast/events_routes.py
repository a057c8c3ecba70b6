"""`/webcast/events`: the managed event stream (WebSocket), and its description in the OpenAPI
document as a GET operation, which is what a client that does not upgrade reaches (426)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security, WebSocket
from fastapi.security import APIKeyQuery
from starlette.responses import Response

from livegate.errors import LivegateError
from livegate.webcast.auth import Principal
from livegate.webcast.dependencies import (
    access_token,
    api_key_header,
    api_key_query,
    caller,
    service,
    x_oauth_token,
)
from livegate.webcast.docs import EVENT_STREAM_ROUTE, json_route
from livegate.webcast.events_sse import EventStreamResponse
from livegate.webcast.routing import WebcastRoute

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webcast", tags=["webcast"], route_class=WebcastRoute)
# The SSE stream runs for as long as the room: not under WebcastRoute's per-call deadline.
stream_router = APIRouter(prefix="/webcast", tags=["webcast"])

jwt_key_query = APIKeyQuery(
    name="jwtKey",
    scheme_name="jwtKey",
    description="A browser token from `POST /webcast/jwt` (EventSource cannot send headers).",
    auto_error=False,
)

EVENTS_DESCRIPTION = """\
**A WebSocket**, with the query the Euler WebSocket SDK 0.0.6 builds (`createWebSocketUrl`):
`uniqueId` (the streamer), `apiKey` or `jwtKey`, `features.*` flattened with dots (booleans
`true|false|1|0`). Backends may send `Authorization: Bearer <access token>` or `x-oauth-token`
instead: the user's TikTok session then connects (age-restricted rooms work); an API key alone
connects anonymously. Scope: `webcast:fetch`; counted as a connection start.

livegate runs the TikTok side (fetch, push WebSocket, heartbeats, acks, reconnects from the
cursor) once per room and credential, shared by every subscriber, and streams:

- first, a text frame `{"type": "roomInfo", "data": {...}}` (the SDK's `RoomInfoEvent`);
- then TikTok's events as binary `WebcastPushFrame`s (`deserializeWebSocketMessage` decodes
  them; the first carries the initial fetch's messages), or with `format=json`, text frames of
  decoded events `{"type": "WebcastChatMessage", "data": {...}}` (the proto classes' field
  names), bundled as `{"timestamp", "messages": [...]}` unless `features.bundleEvents=false`
  (the SDK's default is `true`). `features.syntheticPresence` adds `SyntheticJoinMessage` /
  `SyntheticLeaveMessage` (JSON only; `features.syntheticPresenceLeaveAfter`, 60-3600 s).

Close codes (the SDK's `ClientCloseCode`): 4400 invalid options, 4401 invalid credential (also
when the token or grant is revoked or expires while open), 4403 the JWT does not grant this
creator, 4404 not live, 4429 too many open streams for the API key or grant (or too many
connection starts), 4005 the stream ended, 4006 no messages within
`features.closeInactiveWebSocketAfter` (30-3600 s, default 60), 4500 TikTok closed the
connection and it could not be resumed, 4556 / 4557 the fetch / room info failed (4557 with
`age_restricted` or `private_room` when the room needs a user who may watch it), 1011 an
internal error or a subscriber too slow to keep up. No lifetime cap: a stream lasts as long
as the room.

A plain GET (no upgrade) is answered 426 after its credentials are checked.
"""


@router.get(
    "/events",
    **json_route("webcast:fetch"),
    description=EVENTS_DESCRIPTION,
    status_code=426,
    response_description="upgrade_required: open it as a WebSocket (`Upgrade: websocket`).",
)
async def events_description(
    request: Request,
    principal: Annotated[Principal, Security(caller, scopes=["webcast:fetch"])],
    unique_id: Annotated[str | None, Query(alias="uniqueId", description="The streamer.")] = None,
    jwt_key: Annotated[
        str | None, Query(alias="jwtKey", description="A browser token (POST /webcast/jwt).")
    ] = None,
    output: Annotated[
        str | None, Query(alias="format", description="`binary` (default) or `json`.")
    ] = None,
    bundle: Annotated[str | None, Query(alias="features.bundleEvents")] = None,
    raw: Annotated[str | None, Query(alias="features.rawMessages")] = None,
    presence: Annotated[str | None, Query(alias="features.syntheticPresence")] = None,
    leave_after: Annotated[str | None, Query(alias="features.syntheticPresenceLeaveAfter")] = None,
    inactive: Annotated[str | None, Query(alias="features.closeInactiveWebSocketAfter")] = None,
) -> None:
    """A LIVE room's events as a WebSocket (Euler WebSocket SDK compatible)."""
    raise LivegateError(
        426,
        "upgrade_required",
        "GET /webcast/events is a WebSocket: open it with an Upgrade: websocket request.",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@router.websocket("/events")
async def events(ws: WebSocket) -> None:
    """The managed event stream (see the GET operation for its query and close codes)."""
    await service(ws).events.serve(ws)


SSE_DESCRIPTION = """\
**Server-Sent Events**: the managed event stream of `GET /webcast/events` as
`text/event-stream`, for browsers (`EventSource`) and anything that reads HTTP. Credentials as
on the WebSocket: `Authorization: Bearer` or `x-oauth-token` (the user's session connects), an
API key (`X-Api-Key` or `apiKey`; alone: anonymously), or `jwtKey`, a browser token from
`POST /webcast/jwt` that must name this creator; the same open-stream limits count it. Scope:
`webcast:fetch`; counted as a connection start. Subscribers of one room with one credential
share one TikTok connection with its WebSocket subscribers.

The stream: `data: {"type": "roomInfo", "data": {...}}` first, then one event per message,
`{"type": "WebcastChatMessage", "data": {...}}` as `format=json` sends them, each with an
`id:`. Reconnecting with `Last-Event-ID` (EventSource does; or `lastEventId` in the query)
resumes after that id from a buffer of the room's recent events (`LIVEGATE_EVENTS_RESUME_*`:
by count and age; in Redis when configured, so any instance resumes it); an id older than the
buffer gets `event: gap` (`{"lastEventId", "oldestId"}`) before what the buffer holds. Without
one, the room's recent events (up to 50) come first. `: keepalive` comments every 15 s.

Refused before it starts: `{code, message, error}` with 400 (options, Last-Event-ID), 401 (a
credential), 403 (a JWT for another creator, `age_restricted`, `private_room`), 404 (not
live), 429 (open streams or connection starts), 502. Ended after it started: a last
`event: error` with `{"code", "message"}`, the WebSocket's close codes (4005 the LIVE ended,
4401 the token or grant was revoked, within seconds; 4500, 1011...). Any origin may read it
(`Access-Control-Allow-Origin: *`, this route only): a browser holds only a jwtKey.
"""


async def _stream_credentials(
    bearer: Annotated[str | None, Depends(access_token)],
    oauth_token: Annotated[str | None, Depends(x_oauth_token)],
    key: Annotated[str | None, Depends(api_key_header)],
    key_in_query: Annotated[str | None, Depends(api_key_query)],
    jwt_key: Annotated[str | None, Depends(jwt_key_query)],
) -> None:
    """The credentials the stream takes, for the OpenAPI document; the stream reads them
    from the request as the WebSocket does."""


@stream_router.get(
    "/rooms/{unique_id}/events",
    **EVENT_STREAM_ROUTE,
    response_class=EventStreamResponse,
    description=SSE_DESCRIPTION,
    dependencies=[Security(_stream_credentials, scopes=["webcast:fetch"])],
)
async def room_events(
    request: Request,
    unique_id: Annotated[str, Path(description="The streamer (`@name` allowed).")],
    last_event_id: Annotated[
        str | None,
        Query(alias="lastEventId", description="Resume after this id (as Last-Event-ID)."),
    ] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this id (EventSource sends it)."),
    ] = None,
) -> Response:
    """A LIVE room's events as Server-Sent Events, resumable with Last-Event-ID."""
    try:
        return await service(request).sse.open(request, unique_id)
    except LivegateError:
        raise
    except Exception:
        log.exception("event stream failed to start")
        raise LivegateError(500, "server_error", "Internal error.") from None
