"""The webcast API's logic: what each route does with its checked input and its caller, the
upstream failures as our answers, and each call counted for the usage page. No HTTP here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from anyio import to_thread
from sqlalchemy import select
from starlette.websockets import WebSocket

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import TikTokAccount
from livegate.errors import LivegateError, bad_request
from livegate.oauth.service import OAuthService
from livegate.ratelimit import Limiter
from livegate.tiktok.cookies import IDENTITY_COOKIE_NAMES, cookie_header, plain_cookie_value
from livegate.tiktok.errors import SessionExpired, UpstreamError, UserNotFound
from livegate.tiktok.protobuf import rewrite_push_server
from livegate.tiktok.webcast import LiveState, WebcastClient
from livegate.vault import Vault
from livegate.webcast.auth import Authenticator, Principal
from livegate.webcast.browser_tokens import BrowserTokens
from livegate.webcast.errors import from_upstream, invalid_token, session_required
from livegate.webcast.events_socket import EventStreams
from livegate.webcast.events_sse import SseStream
from livegate.webcast.ratelimit import WebcastLimiter
from livegate.webcast.recorder import CallRecorder
from livegate.webcast.relay import RelayRegistry, WebSocketRelay
from livegate.webcast.schemas import (
    BulkByUserIdAnswer,
    ChatAnswer,
    LiveByUniqueId,
    LiveByUserId,
    LiveEntry,
    RankingsAnswer,
    RateLimitsAnswer,
    RoomIdAnswer,
    RoomInfoAnswer,
)
from livegate.webcast.tickets import TicketStore, ws_base

log = logging.getLogger(__name__)

# Cookies a fetch result may hand to the client (X-Set-TT-Cookie) when the user's session
# signed it: TikTok's visitor cookies only, never anything that identifies the session.
VISITOR_COOKIES = frozenset({"ttwid", "msToken", "tt_chain_token", "tt_csrf_token"})
BULK_CONCURRENCY = 10
BULK_DEADLINE = 3.6  # inside the route's own deadline: what is known by then is answered


@dataclass(frozen=True)
class Fetched:
    body: bytes  # the ProtoMessageFetchResult, push_server perhaps pointing at our relay
    set_tt_cookie: str  # X-Set-TT-Cookie
    room_id: str


class WebcastService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        vault: Vault,
        oauth: OAuthService,
        upstream: WebcastClient,
        limiter: Limiter,
    ) -> None:
        self.db = database
        self.oauth = oauth
        self.upstream = upstream
        self.auth = Authenticator(database, vault, limiter)
        self.limiter = WebcastLimiter(settings, limiter.storage)
        self.recorder = CallRecorder(database)
        self.tickets = TicketStore(database, vault)
        self.relays = RelayRegistry(database)
        self.relay = WebSocketRelay(self.tickets, self.auth.token_usable, self.relays)
        self.browser_tokens = BrowserTokens(settings, database, vault)
        self.events = EventStreams(
            settings, self.auth, self.limiter, upstream, self.relays, self.browser_tokens
        )
        self.sse = SseStream(self.events, settings.events_sse_keepalive)
        self.ws_base = ws_base(settings.issuer)

    async def aclose(self) -> None:
        await self.events.aclose()
        await self.recorder.aclose()

    def record(self, principal: Principal | None, route: str, status: int) -> None:
        """Count an authenticated call for the usage page (`webcast.call` audit rows)."""
        if principal is None:
            return
        self.recorder.record(
            client_pk=principal.client_pk,
            grant_id=principal.grant_id,
            account_id=principal.caller.account_id if principal.caller else None,
            route=route,
            status=status,
        )

    async def upstream_failure(
        self, principal: Principal | None, exc: UpstreamError
    ) -> LivegateError:
        if not isinstance(exc, SessionExpired):
            log.info("upstream failure %s: %s", exc.code, exc.message)
            return from_upstream(exc)
        if principal is not None and principal.caller is not None:
            # TikTok ended the user's session: the grant needs a new QR sign-in, and every
            # token of it is refused from now on.
            await to_thread.run_sync(self.oauth.mark_login_required, principal.caller.grant_id)
            return invalid_token("login_required")
        message = (
            "TikTok no longer accepts the session sent by the caller: send a current one."
            if principal is not None and principal.has_session
            else "TikTok wants a signed-in user for this call: use an access token."
        )
        return LivegateError(401, "login_required", message)

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
    ) -> Fetched:
        jar = self._jar(principal, session_id, tt_target_idc)
        room = await self._room_id(room_id, unique_id, jar)
        result = await self.upstream.fetch(
            room, cookies=jar, cursor=cursor, user_agent=user_agent, client_enter=client_enter
        )
        body = result.body
        token_digest = principal.token_digest
        if principal.vault_session and principal.caller and jar and token_digest:
            grant_id, session_jar = principal.caller.grant_id, jar

            rows: list[dict[str, object]] = []

            def relayed(upstream: str) -> str:
                ticket, row = self.tickets.seal(upstream, grant_id, token_digest, session_jar)
                rows.append(row)
                return f"{self.ws_base}/webcast/ws/{ticket}/"

            body = rewrite_push_server(body, relayed, result.top)
            await to_thread.run_sync(self.tickets.save, rows)
            cookies = {k: v for k, v in result.set_cookies.items() if k in VISITOR_COOKIES}
        else:
            cookies = {
                k: v for k, v in result.set_cookies.items() if k not in IDENTITY_COOKIE_NAMES
            }
        # TikTokLive refuses a fetch answer without X-Set-TT-Cookie; never send it empty.
        return Fetched(body, cookie_header(cookies) or "tt_chain_token=", room)

    @staticmethod
    def _jar(
        principal: Principal, session_id: str | None, tt_target_idc: str | None
    ) -> dict[str, str] | None:
        """The cookies to sign with: the principal's, or the session the caller sent."""
        jar = principal.jar
        if not session_id:
            return jar
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
        return jar

    async def _room_id(
        self, room_id: str | None, unique_id: str | None, jar: dict[str, str] | None
    ) -> str:
        room_id = (room_id or "").strip()
        if room_id and room_id != "0":
            return room_id  # checked as a numeric id by its schema type
        if unique_id and unique_id.strip().lstrip("@"):
            return await self.upstream.room_id_for(unique_id.strip(), cookies=jar)
        raise bad_request("Send room_id, or unique_id to look the room up.")

    # -- room id / info -------------------------------------------------------------------

    async def room_id(self, principal: Principal, unique_id: str | None) -> RoomIdAnswer:
        unique_id = (unique_id or "").strip().lstrip("@")
        if not unique_id:
            raise bad_request("unique_id is required: the TikTok user whose room to find.")
        try:
            data = await self.upstream.user_room(unique_id, cookies=principal.jar)
        except (UserNotFound, SessionExpired):
            raise
        except UpstreamError:
            room = await self.upstream.room_id_for(unique_id, cookies=principal.jar)
            routes = ["api-live/user/room", "live page"]
            return RoomIdAnswer(routes_attempted=routes, is_live=True, room_id=room)
        state = data["live_state"]
        return RoomIdAnswer(
            routes_attempted=["api-live/user/room"],
            is_live=None if state is LiveState.UNKNOWN else state is LiveState.LIVE,
            live_state=str(state),
            room_id=str(data["user"].get("roomId") or "") or None,
        )

    async def room_info(self, principal: Principal, room_id: str | None) -> RoomInfoAnswer:
        room_id = (room_id or "").strip()
        if not room_id:
            raise bad_request("room_id is required: the numeric id of the LIVE room.")
        data = await self.upstream.room_info(room_id, cookies=principal.jar)
        return RoomInfoAnswer(routes_attempted=["room/info"], data=data)

    # -- bulk live check ------------------------------------------------------------------

    async def bulk_live_check(
        self, principal: Principal, user_ids: list[str] | None, unique_ids: list[str] | None
    ) -> BulkByUserIdAnswer | LiveByUniqueId:
        if user_ids is not None:
            return await self._live_by_user_id(principal, [i.strip() for i in user_ids])
        if unique_ids is None:
            raise bad_request("Send user_numeric_ids (up to 50) or unique_ids (up to 50).")
        names = [u.strip().lstrip("@") for u in unique_ids if u.strip().lstrip("@")]
        states = await self._live_states(principal, names)
        out: dict[str, bool | None] = {}
        for name in names:
            state, _ = states.get(name, (LiveState.UNKNOWN, None))
            out[name] = None if state is LiveState.UNKNOWN else state is LiveState.LIVE
        return LiveByUniqueId(out)

    async def _live_by_user_id(self, principal: Principal, uids: list[str]) -> BulkByUserIdAnswer:
        known = await to_thread.run_sync(self._unique_ids_of, uids)
        states = await self._live_states(principal, [u for u in known.values() if u])
        data: dict[str, LiveEntry] = {}
        for uid in uids:
            uname = known.get(uid)
            if uname is None:
                data[uid] = LiveEntry(is_live=None, room_id=None, error="unknown_user")
                continue
            state, room = states.get(uname, (LiveState.UNKNOWN, None))
            data[uid] = _live_entry(state, room)
        return BulkByUserIdAnswer(response=LiveByUserId(data=data))

    def _unique_ids_of(self, uids: list[str]) -> dict[str, str | None]:
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
                    data = await self.upstream.user_room(name, cookies=principal.jar)
                except UserNotFound:
                    results[name] = (LiveState.OFFLINE, None)
                    return
                except UpstreamError:
                    return
                room = str(data["user"].get("roomId") or "") or None
                results[name] = (data["live_state"], room)

        try:
            async with asyncio.timeout(BULK_DEADLINE):
                await asyncio.gather(*(one(n) for n in dict.fromkeys(names)))
        except TimeoutError:
            pass
        return results

    # -- rankings / chat / limits ---------------------------------------------------------

    async def rankings(self, principal: Principal, region: str, rank_type: str) -> RankingsAnswer:
        region, rank_type = region or "US", rank_type or "DAILY_RANK"
        data = await self.upstream.rankings(
            region=region, rank_type=rank_type, cookies=principal.jar
        )
        return RankingsAnswer(region=region, response=data)

    async def chat(self, principal: Principal, room_id: str | None, content: str) -> ChatAnswer:
        room_id = (room_id or "").strip()
        if not room_id:
            raise bad_request("target_room_id is required: the numeric id of the LIVE room.")
        if not principal.has_session or principal.jar is None:
            raise session_required()
        data = await self.upstream.send_chat(room_id, content, cookies=principal.jar)
        return ChatAnswer(data=data)

    async def rate_limits(self, principal: Principal) -> RateLimitsAnswer:
        return RateLimitsAnswer(limits=await self.limiter.state(principal.credentials()))

    # -- the WebSocket relay --------------------------------------------------------------

    async def websocket(self, ws: WebSocket, ticket: str) -> None:
        await self.relay.handle(ws, ticket)


def _live_entry(state: LiveState, room: str | None) -> LiveEntry:
    if state is LiveState.UNKNOWN:
        return LiveEntry(is_live=None, room_id=room, error="unknown")
    return LiveEntry(is_live=state is LiveState.LIVE, room_id=room)
