"""`/webcast/events`: the managed event stream (WebSocket), and its description in the OpenAPI
document as a GET operation, which is what a client that does not upgrade reaches (426)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Security, WebSocket

from livegate.errors import LivegateError
from livegate.webcast.auth import Principal
from livegate.webcast.dependencies import caller, service
from livegate.webcast.docs import json_route
from livegate.webcast.routing import WebcastRoute

router = APIRouter(prefix="/webcast", tags=["webcast"], route_class=WebcastRoute)

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
