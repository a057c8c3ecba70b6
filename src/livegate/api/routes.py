"""`/webcast/*`: HTTP only. Each route names its scope and rate-limit category and hands the
rest to `WebcastApi.run` (service.py)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from livegate.api.auth import Principal
from livegate.api.perf import cache_missing_sniffio
from livegate.api.ratelimit import CALLS, CONNECT
from livegate.api.schemas import BulkLiveCheckBody, ChatBody, FetchBody, RankingsBody, json_body
from livegate.api.service import WebcastApi
from livegate.tiktok.signer import make_signer
from livegate.tiktok.webcast import WebcastClient

FETCH = "webcast:fetch"
BULK = "webcast:bulk_live_check"
RANKINGS = "webcast:rankings"
CHAT = "webcast:chat"

router = APIRouter(prefix="/webcast", tags=["webcast"])


def _api(request: Request) -> WebcastApi:
    api: WebcastApi = request.app.state.webcast_api
    return api


def _flag(value: str | None, default: bool = True) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "")


@router.get("/fetch", response_class=Response)
async def fetch(request: Request) -> Response:
    api, q = _api(request), request.query_params

    async def handler(p: Principal) -> Response:
        return await api.fetch(
            p,
            room_id=q.get("room_id"),
            unique_id=q.get("unique_id"),
            cursor=q.get("cursor", ""),
            user_agent=q.get("user_agent") or None,
            client_enter=_flag(q.get("client_enter")),
            session_id=q.get("session_id") or None,
            tt_target_idc=q.get("tt_target_idc") or None,
        )

    return await api.run(
        request, route="GET /webcast/fetch", scope=FETCH, category=CONNECT, handler=handler
    )


@router.post("/fetch", response_class=Response)
async def fetch_post(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, FetchBody)
        return await api.fetch(
            p,
            room_id=body.room_id,
            unique_id=body.unique_id,
            cursor=body.cursor,
            user_agent=body.user_agent,
        )

    return await api.run(
        request, route="POST /webcast/fetch", scope=FETCH, category=CONNECT, handler=handler
    )


@router.get("/rooms/{room_id}/connect", response_class=Response)
async def connect(request: Request, room_id: str) -> Response:
    api, q = _api(request), request.query_params

    async def handler(p: Principal) -> Response:
        return await api.fetch(
            p,
            room_id=room_id,
            unique_id=q.get("unique_id"),
            cursor=q.get("cursor", ""),
            user_agent=q.get("user_agent") or None,
            client_enter=_flag(q.get("client_enter")),
        )

    return await api.run(
        request,
        route="GET /webcast/rooms/{room_id}/connect",
        scope=FETCH,
        category=CONNECT,
        handler=handler,
    )


@router.get("/room_id", response_class=Response)
async def room_id(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        return await api.room_id(p, request.query_params.get("unique_id"))

    return await api.run(
        request, route="GET /webcast/room_id", scope=FETCH, category=CALLS, handler=handler
    )


@router.get("/room_info", response_class=Response)
async def room_info(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        return await api.room_info(p, request.query_params.get("room_id"))

    return await api.run(
        request, route="GET /webcast/room_info", scope=FETCH, category=CALLS, handler=handler
    )


@router.get("/rooms/{room_id}/room_info", response_class=Response)
async def room_info_path(request: Request, room_id: str) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        return await api.room_info(p, room_id)

    return await api.run(
        request,
        route="GET /webcast/rooms/{room_id}/room_info",
        scope=FETCH,
        category=CALLS,
        handler=handler,
    )


@router.post("/bulk_live_check", response_class=Response)
async def bulk_live_check(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, BulkLiveCheckBody)
        return await api.bulk_live_check(p, body.user_numeric_ids, body.unique_ids)

    return await api.run(
        request, route="POST /webcast/bulk_live_check", scope=BULK, category=CALLS, handler=handler
    )


@router.get("/rankings", response_class=Response)
async def rankings(request: Request) -> Response:
    api, q = _api(request), request.query_params

    async def handler(p: Principal) -> Response:
        return await api.rankings(p, q.get("region", "US"), q.get("rank_type", "DAILY_RANK"))

    return await api.run(
        request, route="GET /webcast/rankings", scope=RANKINGS, category=CALLS, handler=handler
    )


@router.post("/rankings", response_class=Response)
async def rankings_post(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, RankingsBody)
        return await api.rankings(p, body.region, body.rank_type)

    return await api.run(
        request, route="POST /webcast/rankings", scope=RANKINGS, category=CALLS, handler=handler
    )


@router.post("/chat", response_class=Response)
async def chat(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, ChatBody)
        return await api.chat(p, body.target_room_id or body.room_id, body.content)

    return await api.run(
        request, route="POST /webcast/chat", scope=CHAT, category=CALLS, handler=handler
    )


@router.post("/rooms/{room_id}/chat", response_class=Response)
async def chat_path(request: Request, room_id: str) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, ChatBody)
        return await api.chat(p, room_id, body.content)

    return await api.run(
        request,
        route="POST /webcast/rooms/{room_id}/chat",
        scope=CHAT,
        category=CALLS,
        handler=handler,
    )


@router.get("/rate_limits", response_class=Response)
async def rate_limits(request: Request) -> Response:
    api = _api(request)
    # Any token may read its own limits: the scope every webcast token has is not required.
    return await api.run(
        request,
        route="GET /webcast/rate_limits",
        scope="",
        category=None,
        handler=api.rate_limits,
    )


@router.websocket("/ws/{ticket}/")
async def ws_proxy(ws: WebSocket, ticket: str) -> None:
    api: WebcastApi = ws.app.state.webcast_api
    await api.websocket(ws, ticket)


def install(app: FastAPI) -> WebcastApi:
    """Build the webcast API on `app.state` (settings, db, oauth, http) and mount the routes."""
    cache_missing_sniffio()
    state = app.state
    webcast = getattr(state, "webcast", None)
    if webcast is None:
        webcast = WebcastClient(state.http, state.settings, make_signer(state.settings, state.http))
        state.webcast = webcast
    api = WebcastApi(state.settings, state.db, state.oauth, webcast)
    state.webcast_api = api
    app.include_router(router)
    return api
