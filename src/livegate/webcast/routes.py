"""`/webcast/*`: HTTP only. Each route names its caller dependency (scope and rate-limit
category), reads its checked input and hands the rest to `WebcastService` (service.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Security, WebSocket

from livegate.tiktok.signer import make_signer
from livegate.tiktok.webcast import WebcastClient
from livegate.webcast.auth import Principal
from livegate.webcast.browser_tokens import BrowserTokens
from livegate.webcast.dependencies import (
    access_token,
    caller,
    calls,
    connects,
    service,
    x_oauth_token,
)
from livegate.webcast.docs import FETCH_DESCRIPTION, PROTOBUF_ROUTE, json_route
from livegate.webcast.responses import FetchResponse
from livegate.webcast.routing import WebcastRoute
from livegate.webcast.schemas import (
    BulkByUserIdAnswer,
    BulkLiveCheckBody,
    ChatAnswer,
    ChatBody,
    CookieValue,
    Cursor,
    FetchBody,
    Flag,
    JwtAnswer,
    JwtBody,
    LiveByUniqueId,
    RankingsAnswer,
    RankingsBody,
    RateLimitsAnswer,
    RoomId,
    RoomIdAnswer,
    RoomInfoAnswer,
    UniqueId,
    UserAgent,
    Word,
)
from livegate.webcast.service import WebcastService

FETCH = "webcast:fetch"
BULK = "webcast:bulk_live_check"
RANKINGS = "webcast:rankings"
CHAT = "webcast:chat"

# A body without Content-Type is read as JSON, as the SDKs have always been answered.
router = APIRouter(
    prefix="/webcast", tags=["webcast"], route_class=WebcastRoute, strict_content_type=False
)

Fetcher = Annotated[Principal, Security(connects, scopes=[FETCH])]
RoomIdQ = Annotated[RoomId | None, Query(description="The LIVE room (0: look up unique_id).")]
UniqueIdQ = Annotated[UniqueId | None, Query(description="The streamer (a leading @ is fine).")]
CursorQ = Annotated[Cursor, Query(description="The previous fetch result's cursor.")]
UserAgentQ = Annotated[UserAgent | None, Query(description="The client's user agent.")]
ClientEnterQ = Annotated[Flag, Query(description="First fetch of a connection (0/false: not).")]
RoomIdPath = Annotated[RoomId, Path(description="The LIVE room (0: look up unique_id).")]


@router.get("/fetch", **PROTOBUF_ROUTE, description=FETCH_DESCRIPTION)
async def fetch(
    request: Request,
    principal: Fetcher,
    room_id: RoomIdQ = None,
    unique_id: UniqueIdQ = None,
    cursor: CursorQ = "",
    user_agent: UserAgentQ = None,
    client_enter: ClientEnterQ = True,
    session_id: Annotated[
        CookieValue | None, Query(description="API key callers: their own sessionid.")
    ] = None,
    tt_target_idc: Annotated[
        CookieValue | None, Query(description="API key callers: their session's tt-target-idc.")
    ] = None,
) -> FetchResponse:
    """A LIVE room's events: TikTok's `ProtoMessageFetchResult` (TikTokLive's query)."""
    fetched = await service(request).fetch(
        principal,
        room_id=room_id,
        unique_id=unique_id,
        cursor=cursor,
        user_agent=user_agent,
        client_enter=client_enter,
        session_id=session_id,
        tt_target_idc=tt_target_idc,
    )
    return FetchResponse(fetched)


@router.post("/fetch", **PROTOBUF_ROUTE)
async def fetch_post(
    request: Request, principal: Fetcher, body: Annotated[FetchBody | None, Body()] = None
) -> FetchResponse:
    """The same as `GET /webcast/fetch`, in the docs' JSON form."""
    body = body or FetchBody()
    fetched = await service(request).fetch(
        principal,
        room_id=body.room_id,
        unique_id=body.unique_id,
        cursor=body.cursor,
        user_agent=body.user_agent,
    )
    return FetchResponse(fetched)


@router.get("/rooms/{room_id}/connect", **PROTOBUF_ROUTE)
async def connect(
    request: Request,
    principal: Fetcher,
    room_id: RoomIdPath,
    unique_id: UniqueIdQ = None,
    cursor: CursorQ = "",
    user_agent: UserAgentQ = None,
    client_enter: ClientEnterQ = True,
) -> FetchResponse:
    """The same as `GET /webcast/fetch`, as TikTok-Live-Connector asks for it."""
    fetched = await service(request).fetch(
        principal,
        room_id=room_id,
        unique_id=unique_id,
        cursor=cursor,
        user_agent=user_agent,
        client_enter=client_enter,
    )
    return FetchResponse(fetched)


@router.get("/room_id", **json_route(FETCH))
async def room_id(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[FETCH])],
    unique_id: Annotated[UniqueId | None, Query(description="The TikTok user.")] = None,
) -> RoomIdAnswer:
    """A user's LIVE room id, and whether they are LIVE (null: TikTok did not say)."""
    return await service(request).room_id(principal, unique_id)


@router.get("/room_info", **json_route(FETCH))
async def room_info(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[FETCH])],
    room_id: Annotated[RoomId | None, Query(description="The LIVE room.")] = None,
) -> RoomInfoAnswer:
    """A room's info; an age-restricted room needs a user session (an access token)."""
    return await service(request).room_info(principal, room_id)


@router.get("/rooms/{room_id}/room_info", **json_route(FETCH))
async def room_info_path(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[FETCH])],
    room_id: Annotated[RoomId, Path(description="The LIVE room.")],
) -> RoomInfoAnswer:
    """The same as `GET /webcast/room_info`, the room in the path."""
    return await service(request).room_info(principal, room_id)


@router.post("/bulk_live_check", **json_route(BULK))
async def bulk_live_check(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[BULK])],
    body: Annotated[BulkLiveCheckBody | None, Body()] = None,
) -> BulkByUserIdAnswer | LiveByUniqueId:
    """Who is LIVE: by `user_numeric_ids` (users signed in here) or by `unique_ids`.
    Unknown is null, never "offline"."""
    body = body or BulkLiveCheckBody()
    return await service(request).bulk_live_check(principal, body.user_numeric_ids, body.unique_ids)


@router.get("/rankings", **json_route(RANKINGS))
async def rankings(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[RANKINGS])],
    region: Annotated[Word, Query(description="e.g. US")] = "US",
    rank_type: Annotated[Word, Query(description="e.g. DAILY_RANK")] = "DAILY_RANK",
) -> RankingsAnswer:
    """TikTok LIVE leaderboards."""
    return await service(request).rankings(principal, region, rank_type)


@router.post("/rankings", **json_route(RANKINGS))
async def rankings_post(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[RANKINGS])],
    body: Annotated[RankingsBody | None, Body()] = None,
) -> RankingsAnswer:
    """The same as `GET /webcast/rankings`, in JSON."""
    body = body or RankingsBody()
    return await service(request).rankings(principal, body.region, body.rank_type)


@router.post("/chat", **json_route(CHAT))
async def chat(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[CHAT])],
    body: ChatBody,
) -> ChatAnswer:
    """Send a chat message as the user (needs a user session)."""
    room = body.target_room_id or body.room_id
    return await service(request).chat(principal, room, body.content)


@router.post("/rooms/{room_id}/chat", **json_route(CHAT))
async def chat_path(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[CHAT])],
    room_id: Annotated[RoomId, Path(description="The LIVE room.")],
    body: ChatBody,
) -> ChatAnswer:
    """The same as `POST /webcast/chat`, the room in the path."""
    return await service(request).chat(principal, room_id, body.content)


@router.get("/rate_limits", **json_route(None))
async def rate_limits(
    request: Request, principal: Annotated[Principal, Security(caller)]
) -> RateLimitsAnswer:
    """The caller's own limits and what is left of them. Any valid token may ask: no scope."""
    return await service(request).rate_limits(principal)


@router.post("/jwt", **{**json_route(None), "openapi_extra": {"x-scopes": [FETCH]}})
async def jwt(
    request: Request,
    principal: Annotated[Principal, Security(calls, scopes=[FETCH])],
    body: JwtBody,
    bearer: Annotated[str | None, Depends(access_token)],
    oauth_token: Annotated[str | None, Depends(x_oauth_token)],
) -> JwtAnswer:
    """A browser token (`jwtKey`) for the event streams, `GET /webcast/events` (WebSocket) and
    `GET /webcast/rooms/{unique_id}/events` (Server-Sent Events), for the app's backend to hand
    its page: called with the app's API key (X-Api-Key), and with a user's access token to
    act as that user. It names the creators it may open and how many sockets it may hold;
    it carries no API key or access token."""
    tokens: BrowserTokens = request.app.state.browser_tokens
    issued = await tokens.issue(
        principal,
        (bearer or oauth_token or "").strip() or None,
        creators=body.creators,
        max_sockets=body.max_sockets,
        ttl=body.expires_in,
    )
    c = issued.claims
    return JwtAnswer(
        token=issued.token,
        expires_in=c.expires_at - c.issued_at,
        expires_at=c.expires_at,
        creators=list(c.creators),
        max_sockets=c.max_sockets,
        acts_as_user=c.acts_as_user,
    )


@router.websocket("/ws/{ticket}/")
async def relay(ws: WebSocket, ticket: str) -> None:
    """The WebSocket relay a session-signed fetch names (see `GET /webcast/fetch`)."""
    await service(ws).websocket(ws, ticket)


def install(app: FastAPI) -> WebcastService:
    """Build the webcast service on `app.state` (settings, db, vault, oauth, http, limiter)
    and serve `/webcast/*`."""
    state = app.state
    upstream = WebcastClient(state.http, state.settings, make_signer(state.settings, state.http))
    webcast = WebcastService(
        state.settings, state.db, state.vault, state.oauth, upstream, state.limiter
    )
    state.webcast = webcast
    state.browser_tokens = webcast.browser_tokens
    app.include_router(router)
    return webcast
