"""`/webcast/*`: HTTP only. Each route names its scope and rate-limit category and hands the
rest to `WebcastApi.run` (service.py).

The resource server is a plain Starlette router behind one thin edge (`WebcastEdge`: security
headers, `{code, message}` for whatever escapes a route), served ahead of all of FastAPI
(`web.Gateway.serve_first`). Every route reads its own input and `run` answers every failure,
so FastAPI's layers (error, telemetry and body-limit middleware, dependency solving, request
models, exception handlers, its router) would do nothing here but cost time on the hottest
path: the fetch that starts each LIVE connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, Router, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from livegate.api.auth import Principal
from livegate.api.errors import ApiError
from livegate.api.query import query_params
from livegate.api.ratelimit import CALLS, CONNECT
from livegate.api.schemas import (
    BulkLiveCheckBody,
    ChatBody,
    FetchBody,
    RankingsBody,
    check_cookie_value,
    check_cursor,
    check_room_id,
    check_unique_id,
    check_user_agent,
    check_word,
    checked,
    json_body,
)
from livegate.api.service import WebcastApi
from livegate.tiktok.signer import make_signer
from livegate.tiktok.webcast import WebcastClient
from livegate.web import Gateway, with_security_headers

log = logging.getLogger(__name__)

FETCH = "webcast:fetch"
BULK = "webcast:bulk_live_check"
RANKINGS = "webcast:rankings"
CHAT = "webcast:chat"


def _api(conn: HTTPConnection) -> WebcastApi:
    api: WebcastApi = conn.app.state.webcast_api
    return api


def _flag(value: str | None, default: bool = True) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "")


async def fetch(request: Request) -> Response:
    api, q = _api(request), query_params(request)

    async def handler(p: Principal) -> Response:
        return await api.fetch(
            p,
            room_id=checked(q.get("room_id"), check_room_id, "room_id"),
            unique_id=checked(q.get("unique_id"), check_unique_id, "unique_id"),
            cursor=checked(q.get("cursor", ""), check_cursor, "cursor") or "",
            user_agent=checked(q.get("user_agent"), check_user_agent, "user_agent") or None,
            client_enter=_flag(q.get("client_enter")),
            session_id=checked(q.get("session_id"), check_cookie_value, "session_id") or None,
            tt_target_idc=checked(q.get("tt_target_idc"), check_cookie_value, "tt_target_idc")
            or None,
        )

    return await api.run(
        request, route="GET /webcast/fetch", scope=FETCH, category=CONNECT, handler=handler
    )


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


async def connect(request: Request) -> Response:
    api, q = _api(request), query_params(request)
    room_id = request.path_params["room_id"]

    async def handler(p: Principal) -> Response:
        return await api.fetch(
            p,
            room_id=checked(room_id, check_room_id, "room_id"),
            unique_id=checked(q.get("unique_id"), check_unique_id, "unique_id"),
            cursor=checked(q.get("cursor", ""), check_cursor, "cursor") or "",
            user_agent=checked(q.get("user_agent"), check_user_agent, "user_agent") or None,
            client_enter=_flag(q.get("client_enter")),
        )

    return await api.run(
        request,
        route="GET /webcast/rooms/{room_id}/connect",
        scope=FETCH,
        category=CONNECT,
        handler=handler,
    )


async def room_id(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        unique_id = query_params(request).get("unique_id")
        return await api.room_id(p, checked(unique_id, check_unique_id, "unique_id"))

    return await api.run(
        request, route="GET /webcast/room_id", scope=FETCH, category=CALLS, handler=handler
    )


async def room_info(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        room = query_params(request).get("room_id")
        return await api.room_info(p, checked(room, check_room_id, "room_id"))

    return await api.run(
        request, route="GET /webcast/room_info", scope=FETCH, category=CALLS, handler=handler
    )


async def room_info_path(request: Request) -> Response:
    api = _api(request)
    room_id = request.path_params["room_id"]

    async def handler(p: Principal) -> Response:
        return await api.room_info(p, checked(room_id, check_room_id, "room_id"))

    return await api.run(
        request,
        route="GET /webcast/rooms/{room_id}/room_info",
        scope=FETCH,
        category=CALLS,
        handler=handler,
    )


async def bulk_live_check(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, BulkLiveCheckBody)
        return await api.bulk_live_check(p, body.user_numeric_ids, body.unique_ids)

    return await api.run(
        request, route="POST /webcast/bulk_live_check", scope=BULK, category=CALLS, handler=handler
    )


async def rankings(request: Request) -> Response:
    api, q = _api(request), query_params(request)

    async def handler(p: Principal) -> Response:
        region = checked(q.get("region", "US"), check_word, "region") or ""
        rank_type = checked(q.get("rank_type", "DAILY_RANK"), check_word, "rank_type") or ""
        return await api.rankings(p, region, rank_type)

    return await api.run(
        request, route="GET /webcast/rankings", scope=RANKINGS, category=CALLS, handler=handler
    )


async def rankings_post(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, RankingsBody)
        return await api.rankings(p, body.region, body.rank_type)

    return await api.run(
        request, route="POST /webcast/rankings", scope=RANKINGS, category=CALLS, handler=handler
    )


async def chat(request: Request) -> Response:
    api = _api(request)

    async def handler(p: Principal) -> Response:
        body = await json_body(request, ChatBody)
        return await api.chat(p, body.target_room_id or body.room_id, body.content)

    return await api.run(
        request, route="POST /webcast/chat", scope=CHAT, category=CALLS, handler=handler
    )


async def chat_path(request: Request) -> Response:
    api = _api(request)
    room_id = request.path_params["room_id"]

    async def handler(p: Principal) -> Response:
        room = checked(room_id, check_room_id, "room_id")
        body = await json_body(request, ChatBody)
        return await api.chat(p, room, body.content)

    return await api.run(
        request,
        route="POST /webcast/rooms/{room_id}/chat",
        scope=CHAT,
        category=CALLS,
        handler=handler,
    )


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


class Endpoint:
    """A route function as a bare ASGI app.

    Starlette's own wrapper (`request_response`) would look up exception handlers and wrap
    `send` once more for every call; `WebcastEdge` already answers what escapes a route.
    """

    def __init__(self, func: Callable[[Request], Awaitable[Response]]) -> None:
        self.func = func

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.func(Request(scope, receive, send))
        await response(scope, receive, send)


async def ws_proxy(ws: WebSocket) -> None:
    await _api(ws).websocket(ws, ws.path_params["ticket"])


ROUTES = [
    Route("/webcast/fetch", Endpoint(fetch), methods=["GET"]),
    Route("/webcast/fetch", Endpoint(fetch_post), methods=["POST"]),
    Route("/webcast/rooms/{room_id}/connect", Endpoint(connect), methods=["GET"]),
    Route("/webcast/room_id", Endpoint(room_id), methods=["GET"]),
    Route("/webcast/room_info", Endpoint(room_info), methods=["GET"]),
    Route("/webcast/rooms/{room_id}/room_info", Endpoint(room_info_path), methods=["GET"]),
    Route("/webcast/bulk_live_check", Endpoint(bulk_live_check), methods=["POST"]),
    Route("/webcast/rankings", Endpoint(rankings), methods=["GET"]),
    Route("/webcast/rankings", Endpoint(rankings_post), methods=["POST"]),
    Route("/webcast/chat", Endpoint(chat), methods=["POST"]),
    Route("/webcast/rooms/{room_id}/chat", Endpoint(chat_path), methods=["POST"]),
    Route("/webcast/rate_limits", Endpoint(rate_limits), methods=["GET"]),
    WebSocketRoute("/webcast/ws/{ticket}/", ws_proxy),
]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).close()
        return
    await ApiError(404, "Not Found").response()(scope, receive, send)


def _error(exc: Exception) -> ApiError:
    if isinstance(exc, HTTPException):  # the router's own: 405 with Allow
        return ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, (RecursionError, UnicodeError)):
        # As app.py's backstop: input the route should have refused, not a server failure.
        log.warning("%s from input on a webcast route", type(exc).__name__, exc_info=exc)
        return ApiError(400, "The request holds a value livegate cannot read.")
    # Never a traceback to the caller; the log has it, redacted by the formatter. The same
    # answer as WebcastApi.run gives for a failure inside a route.
    log.exception("unhandled %s on a webcast route", type(exc).__name__)
    return ApiError(500, "internal error", error="server_error")


class WebcastEdge:
    """The resource server's only layer around its router: security headers on every
    answer, and `{code, message}` for anything a route lets escape (the router's 405).

    A request whose method and path name a route without path parameters goes straight to
    that route's endpoint: the router would try each route's regex in turn to find it. The
    router answers the rest (path parameters, WebSocket, 404, 405).
    """

    def __init__(self, app: ASGIApp, exact: dict[tuple[str, str], ASGIApp] | None = None) -> None:
        self.app = app
        self.exact = exact or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        app = self.exact.get((scope["method"], scope["path"]))
        if app is None:
            app = self.app
        else:
            scope["path_params"] = {}
        try:
            await app(scope, receive, send_secured)
        except Exception as exc:
            if started:
                raise
            await _error(exc).response()(scope, receive, send_secured)


def webcast_app() -> ASGIApp:
    """The `/webcast/*` router behind its edge."""
    exact: dict[tuple[str, str], ASGIApp] = {
        (method, route.path): route.app
        for route in ROUTES
        if isinstance(route, Route) and not route.param_convertors
        for method in route.methods or ()
        if method != "HEAD"
    }
    return WebcastEdge(Router(routes=ROUTES, default=_not_found), exact)


def install(app: Gateway) -> WebcastApi:
    """Build the webcast API on `app.state` (settings, db, oauth, http); serve `/webcast/`."""
    state = app.state
    webcast = getattr(state, "webcast", None)
    if webcast is None:
        webcast = WebcastClient(state.http, state.settings, make_signer(state.settings, state.http))
        state.webcast = webcast
    api = WebcastApi(state.settings, state.db, state.oauth, webcast, state.limiter)
    state.webcast_api = api
    app.serve_first("/webcast/", webcast_app())
    return api
