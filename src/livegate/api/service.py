"""The webcast API's logic: authenticate, rate-limit, call TikTok, answer; no routing here.

`WebcastApi.run` is the one pipeline every route goes through: caller authentication and
scope check, the rate limit of the route's category, the handler under an overall deadline,
upstream failures mapped to our answers (reference §4), and the call counted for the
`webcast.call` audit (recorder.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from livegate.api.auth import Authenticator, Principal
from livegate.api.errors import ApiError, bad_request, from_upstream, invalid_token
from livegate.api.ratelimit import Limiter
from livegate.api.recorder import CallRecorder
from livegate.api.wsproxy import (
    RelayRegistry,
    TicketStore,
    WebSocketProxy,
    rewrite_push_server,
    ws_base,
)
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import TikTokAccount
from livegate.ids import tiktok_id
from livegate.oauth.service import OAuthService
from livegate.tiktok.cookies import IDENTITY_COOKIE_NAMES, cookie_header, plain_cookie_value
from livegate.tiktok.errors import (
    SessionExpired,
    UpstreamError,
    UpstreamTimeout,
    UserNotFound,
)
from livegate.tiktok.webcast import LiveState, WebcastClient

log = logging.getLogger(__name__)

DEADLINE = 3.9  # every call answers or fails within 4 s
PROTOBUF = "application/x-protobuf"
# Cookies a fetch result may hand to the client (X-Set-TT-Cookie) when the user's session
# signed it: TikTok's visitor cookies only, never anything that identifies the session.
VISITOR_COOKIES = frozenset({"ttwid", "msToken", "tt_chain_token", "tt_csrf_token"})
BULK_CONCURRENCY = 10

Handler = Callable[[Principal], Awaitable[Response]]


class FetchResponse(Response):
    """A fetch result: the protobuf as TikTok sent it (push_server aside), the cookies for
    the client (`X-Set-TT-Cookie`) and the room. The raw headers are built here directly:
    Starlette's `init_headers` lower-cases, encodes and scans a dict of them on every poll."""

    media_type = PROTOBUF

    def __init__(self, body: bytes, set_tt_cookie: str, room_id: str) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-type", PROTOBUF.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-set-tt-cookie", set_tt_cookie.encode("latin-1")),
            (b"x-room-id", room_id.encode("latin-1")),
            (b"cache-control", b"no-store"),
        ]


def ok(payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"code": 200, "message": "ok", **payload})


class WebcastApi:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        oauth: OAuthService,
        webcast: WebcastClient,
        limiter: Limiter,
    ) -> None:
        self.settings = settings
        self.db = database
        self.oauth = oauth
        self.webcast = webcast
        self.auth = Authenticator(oauth, database, limiter)
        self.limiter = limiter.webcast
        self.recorder = CallRecorder(database)
        self.tickets = TicketStore()
        self.relays = RelayRegistry(database)
        self.proxy = WebSocketProxy(self.tickets, self.auth.token_usable, self.relays)
        self.ws_base = ws_base(settings.issuer)

    async def watch_credentials(self) -> None:
        """Runs for the app's life: other processes' credential changes reach the caches."""
        await self.auth.remote.run()

    async def aclose(self) -> None:
        await self.recorder.aclose()

    # -- the pipeline ---------------------------------------------------------------------

    async def run(
        self,
        request: Request,
        *,
        route: str,
        scope: str,
        category: str | None,
        handler: Handler,
    ) -> Response:
        principal: Principal | None = None
        try:
            principal = await self.auth.authenticate(request, scope)
            if category is not None:
                await self.limiter.hit(category, principal.credentials())
            async with asyncio.timeout(DEADLINE):
                response = await handler(principal)
        except ApiError as exc:
            response = exc.response()
        except UpstreamError as exc:
            response = (await self._upstream_failure(principal, exc)).response()
        except TimeoutError:
            response = from_upstream(UpstreamTimeout()).response()
        except Exception:
            log.exception("webcast %s failed", route)
            response = ApiError(500, "internal error", error="server_error").response()
        if principal is not None:
            caller = principal.caller
            self.recorder.record(
                client_pk=principal.client_pk,
                grant_id=principal.grant_id,
                account_id=caller.account.id if caller else None,
                route=route,
                status=response.status_code,
            )
        return response

    async def _upstream_failure(self, principal: Principal | None, exc: UpstreamError) -> ApiError:
        if not isinstance(exc, SessionExpired):
            log.info("upstream failure %s: %s", exc.code, exc.message)
            return from_upstream(exc)
        if principal is not None and principal.caller is not None:
            grant_id = principal.caller.grant_id
            # TikTok ended the user's session: the grant needs a new QR sign-in, and every
            # token of it is refused from now on.
            await to_thread.run_sync(self.oauth.mark_login_required, grant_id)
            self.auth.forget_grant(grant_id)
            return invalid_token("login_required")
        if principal is not None and principal.has_session:
            return ApiError(
                401,
                "TikTok no longer accepts the session sent by the caller.",
                error="login_required",
            )
        return ApiError(
            401,
            "TikTok wants a signed-in user for this call: use an access token.",
            error="login_required",
        )

    # -- fetch / connect ------------------------------------------------------------------

    async def fetch(
        self,
        principal: Principal,
        *,
        room_id: str | None,
        unique_id: str | None,
        cursor: str = "",
        user_agent: str | None = None,
        client_enter: bool = True,
        session_id: str | None = None,
        tt_target_idc: str | None = None,
    ) -> Response:
        jar = principal.jar
        if session_id:
            if principal.caller is not None:
                raise bad_request(
                    "Send either an access token or a session_id, not both: with a token "
                    "livegate signs with the user's stored session."
                )
            if not all(plain_cookie_value(v) for v in (session_id, tt_target_idc) if v):
                raise bad_request("session_id and tt_target_idc must be plain cookie values.")
            jar = {**(jar or {}), "sessionid": session_id}
            if tt_target_idc:
                jar["tt-target-idc"] = tt_target_idc
        room = await self._room_id(room_id, unique_id, jar)
        result = await self.webcast.fetch(
            room, cookies=jar, cursor=cursor, user_agent=user_agent, client_enter=client_enter
        )
        body = result.body
        token_digest = principal.token_digest
        if principal.vault_session and principal.caller and jar and token_digest:
            grant_id, session_jar = principal.caller.grant_id, jar

            def proxied(upstream: str) -> str:
                ticket = self.tickets.issue(upstream, grant_id, token_digest, session_jar)
                return f"{self.ws_base}/webcast/ws/{ticket}/"

            body = rewrite_push_server(body, proxied, result.top)
            cookies = {k: v for k, v in result.set_cookies.items() if k in VISITOR_COOKIES}
        else:
            cookies = {
                k: v for k, v in result.set_cookies.items() if k not in IDENTITY_COOKIE_NAMES
            }
        # TikTokLive refuses a fetch answer without X-Set-TT-Cookie; never send it empty.
        header = cookie_header(cookies) or "tt_chain_token="
        return FetchResponse(body, header, room)

    async def _room_id(
        self, room_id: str | None, unique_id: str | None, jar: dict[str, str] | None
    ) -> str:
        room_id = (room_id or "").strip()
        if room_id and room_id != "0":
            if not tiktok_id(room_id):
                raise bad_request("room_id must be a numeric room id.")
            return room_id
        if unique_id and unique_id.strip().lstrip("@"):
            return await self.webcast.room_id_for(unique_id.strip(), cookies=jar)
        raise bad_request("Send room_id, or unique_id to look the room up.")

    # -- room id / info -------------------------------------------------------------------

    async def room_id(self, principal: Principal, unique_id: str | None) -> Response:
        unique_id = (unique_id or "").strip().lstrip("@")
        if not unique_id:
            raise bad_request("unique_id is required.")
        try:
            data = await self.webcast.user_room(unique_id, cookies=principal.jar)
        except (UserNotFound, SessionExpired):
            raise
        except UpstreamError:
            room = await self.webcast.room_id_for(unique_id, cookies=principal.jar)
            return ok(
                {
                    "ok": True,
                    "routes_attempted": ["api-live/user/room", "live page"],
                    "is_live": True,
                    "room_id": room,
                }
            )
        state = data["live_state"]
        return ok(
            {
                "ok": True,
                "routes_attempted": ["api-live/user/room"],
                "is_live": None if state is LiveState.UNKNOWN else state is LiveState.LIVE,
                "live_state": str(state),
                "room_id": str(data["user"].get("roomId") or "") or None,
            }
        )

    async def room_info(self, principal: Principal, room_id: str | None) -> Response:
        room_id = (room_id or "").strip()
        if not tiktok_id(room_id):
            raise bad_request("room_id is required and must be numeric.")
        data = await self.webcast.room_info(room_id, cookies=principal.jar)
        return ok({"ok": True, "routes_attempted": ["room/info"], "data": data})

    # -- bulk live check ------------------------------------------------------------------

    async def bulk_live_check(
        self, principal: Principal, user_ids: list[str] | None, unique_ids: list[str] | None
    ) -> Response:
        if user_ids is None and unique_ids is None:
            raise bad_request("Send user_numeric_ids (up to 50) or unique_ids (up to 50).")
        if user_ids is not None:
            if not all(tiktok_id(i.strip()) for i in user_ids):
                raise bad_request("user_numeric_ids must be numeric TikTok user ids.")
            known = await to_thread.run_sync(self._unique_ids_of, [i.strip() for i in user_ids])
            states = await self._live_states(principal, [u for u in known.values() if u])
            data: dict[str, dict[str, Any]] = {}
            for uid in user_ids:
                uid = uid.strip()
                uname = known.get(uid)
                if uname is None:
                    data[uid] = {"is_live": None, "room_id": None, "error": "unknown_user"}
                    continue
                state, room = states.get(uname, (LiveState.UNKNOWN, None))
                data[uid] = _live_entry(state, room)
            return ok({"response": {"data": data}})
        assert unique_ids is not None
        names = [u.strip().lstrip("@") for u in unique_ids if u.strip().lstrip("@")]
        states = await self._live_states(principal, names)
        out: dict[str, bool | None] = {}
        for name in names:
            state, _ = states.get(name, (LiveState.UNKNOWN, None))
            out[name] = None if state is LiveState.UNKNOWN else state is LiveState.LIVE
        return JSONResponse(out)

    def _unique_ids_of(self, uids: list[str]) -> dict[str, str | None]:
        from sqlalchemy import select

        with self.db.session() as session:
            rows = session.execute(
                select(TikTokAccount.uid, TikTokAccount.unique_id).where(
                    TikTokAccount.uid.in_(uids)
                )
            ).all()
        found = {uid: (name or None) for uid, name in rows}
        return {uid: found.get(uid) for uid in uids}

    async def _live_states(
        self, principal: Principal, names: list[str]
    ) -> dict[str, tuple[LiveState, str | None]]:
        """Tri-state per unique_id; anything that fails or runs out of time stays UNKNOWN."""
        results: dict[str, tuple[LiveState, str | None]] = {
            n: (LiveState.UNKNOWN, None) for n in names
        }
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(name: str) -> None:
            async with gate:
                try:
                    data = await self.webcast.user_room(name, cookies=principal.jar)
                except UserNotFound:
                    results[name] = (LiveState.OFFLINE, None)
                    return
                except UpstreamError:
                    return
                room = str(data["user"].get("roomId") or "") or None
                results[name] = (data["live_state"], room)

        try:
            async with asyncio.timeout(DEADLINE - 0.3):
                await asyncio.gather(*(one(n) for n in dict.fromkeys(names)))
        except TimeoutError:
            pass
        return results

    # -- rankings / chat / limits ---------------------------------------------------------

    async def rankings(self, principal: Principal, region: str, rank_type: str) -> Response:
        data = await self.webcast.rankings(
            region=region or "US", rank_type=rank_type or "DAILY_RANK", cookies=principal.jar
        )
        return ok({"region": region or "US", "response": data})

    async def chat(self, principal: Principal, room_id: str | None, content: str) -> Response:
        room_id = (room_id or "").strip()
        if not tiktok_id(room_id):
            raise bad_request("target_room_id is required and must be numeric.")
        if not principal.has_session or principal.jar is None:
            raise ApiError(
                403,
                "Sending chat needs a TikTok user session: an access token with the webcast:chat "
                "scope (or an API key with the caller's own x-cookie-header).",
                error="session_required",
            )
        data = await self.webcast.send_chat(room_id, content, cookies=principal.jar)
        return ok({"data": data})

    async def rate_limits(self, principal: Principal) -> Response:
        states = await self.limiter.state(principal.credentials())
        return ok({"limits": [s.public() for s in states]})

    # -- WebSocket proxy ------------------------------------------------------------------

    async def websocket(self, ws: WebSocket, ticket: str) -> None:
        await self.proxy.handle(ws, ticket)


def _live_entry(state: LiveState, room: str | None) -> dict[str, Any]:
    if state is LiveState.UNKNOWN:
        return {"is_live": None, "room_id": room, "error": "unknown"}
    return {"is_live": state is LiveState.LIVE, "room_id": room}
