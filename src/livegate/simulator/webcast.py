"""Simulator: TikTok's webcast endpoints, the IM WebSocket, and the rooms control API.

Shapes follow what TikTok sends (see shared/reference/tiktok-protocol.md §3); protobuf is built
with TikTokLive's own proto classes. Choices where TikTok's answer is not publicly documented:

- unknown room (im/fetch, room/info):  `{"data":{"message":"room not found","prompts":...},
  "status_code":30001}`
- ended room on im/fetch: a normal protobuf result carrying a `WebcastControlMessage` with
  `action=STREAM_ENDED` (what TikTok's clients see as "live end"); room/info says `status: 4`.
- no session, or a session TikTok has ended, where one is needed or sent (im/fetch with a dead
  `sessionid`, room/chat): HTTP 200 `{"data":{"message":"Please login first","prompts":
  "Please login first"},"status_code":20003}`.
- age-restricted room without a valid session (room/info, im/fetch): `{"data":{"message":
  "Request params error","prompts":"..."},"status_code":10011}`; a private room:
  `{"data":{"prompts":"This LIVE is private"},"status_code":4003110}`.
- WebSocket upgrade refused: HTTP 200 with `handshake-status` and `handshake-msg` headers;
  `415 illegal secret key` when the fetch behind the `wrss` was made with a session and the
  handshake lacks that `sessionid` cookie, `417 illegal wrss` for an unknown `wrss`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import html
import itertools
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    HeartBeatMessage,
    ProtoMessageFetchResult,
    PushHeader,
    User,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastImEnterRoomMessage,
    WebcastPushFrame,
)
from TikTokLiveProto.v3.webcast.im import ControlAction

from livegate.simulator.state import Account, SimState
from livegate.tiktok.webcast import FETCH_MESSAGES_FIELD
from livegate.tiktok.wire import encode_bytes_field

WS_PATH = "/webcast/im/ws_proxy/ws_reuse_supplement/"
LIVE, ENDED = 2, 4
HISTORY_COUNT = 6  # what TikTok's first fetch replays; TikTokLive asks for 6 too
WRSS_TTL = 300.0  # signed WS URLs die quickly upstream; keep the fake lenient but bounded
_SEQ_RE = re.compile(r"(?:^|\|)seq:(\d+)")
_CURSOR_RE = re.compile(r"^t-(\d+)")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Comment:
    seq: int
    msg_id: int
    uid: str
    unique_id: str
    nickname: str
    sec_uid: str
    content: str
    created_ms: int
    # The encoded BaseProtoMessage, made once: encoding it with the proto classes was most of
    # the simulator's CPU per fetch.
    frame: bytes = field(default=b"", repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "msg_id": str(self.msg_id),
            "uid": self.uid,
            "unique_id": self.unique_id,
            "nickname": self.nickname,
            "content": self.content,
            "created_ms": self.created_ms,
        }


_END = object()  # queued to a connection when its room's stream ends


@dataclass(eq=False)
class Connection:
    queue: asyncio.Queue[Any]
    compress: bool
    with_session: bool


@dataclass
class Room:
    room_id: str
    owner_uid: str
    title: str
    status: int = LIVE
    age_restricted: bool = False
    private: bool = False
    created_ms: int = field(default_factory=now_ms)
    ended_ms: int | None = None
    comments: list[Comment] = field(default_factory=list)
    ws_log: list[dict[str, Any]] = field(default_factory=list)
    connections: set[Connection] = field(default_factory=set)
    diamonds: int = 0

    @property
    def last_seq(self) -> int:
        return self.comments[-1].seq if self.comments else 0

    def public(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "owner_uid": self.owner_uid,
            "title": self.title,
            "status": self.status,
            "live": self.status == LIVE,
            "age_restricted": self.age_restricted,
            "private": self.private,
            "created_ms": self.created_ms,
            "ended_ms": self.ended_ms,
            "comments": [c.public() for c in self.comments],
            "ws_connections": len(self.connections),
            "ws_log": list(self.ws_log),
        }


@dataclass(slots=True)
class WsTicket:
    """What a fetch handed out: its `wrss` opens the WebSocket for that room."""

    wrss: str
    room_id: str
    sessionid: str | None  # the valid session the fetch was made with, if any
    seq: int  # the last comment the fetch covered; the socket pushes what comes after
    created: float = field(default_factory=time.monotonic)


@dataclass
class WebcastWorld:
    rooms: dict[str, Room] = field(default_factory=dict)
    tickets: dict[str, WsTicket] = field(default_factory=dict)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    ping_interval: float = 10.0
    _room_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(7_500_000_000_000_000_001)
    )
    _msg_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(7_600_000_000_000_000_001)
    )
    _seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def record(self, conn: HTTPConnection, method: str | None = None) -> None:
        # Names only: tests assert request shapes, and cookie values are secrets even here.
        self.requests.append(
            {
                "method": method or getattr(conn, "method", "WEBSOCKET"),
                "path": conn.url.path,
                "query": dict(conn.query_params),
                "query_keys": [k for k, _ in conn.query_params.multi_items()],
                "cookie_names": sorted(conn.cookies.keys()),
                "header_names": sorted({k.lower() for k in conn.headers}),
                "at": time.time(),
            }
        )

    def live_room_of(self, uid: str) -> Room | None:
        rooms = [r for r in self.rooms.values() if r.owner_uid == uid]
        return max(rooms, key=lambda r: r.created_ms, default=None) if rooms else None

    def new_ticket(self, room: Room, sessionid: str | None) -> WsTicket:
        # Tickets sit in creation order: drop expired ones from the front, never scan them all
        # (a scan per fetch made the simulator O(tickets) under load).
        cutoff = time.monotonic() - WRSS_TTL
        while self.tickets:
            oldest = next(iter(self.tickets.values()))
            if oldest.created >= cutoff:
                break
            del self.tickets[oldest.wrss]
        ticket = WsTicket(secrets.token_urlsafe(32), room.room_id, sessionid, room.last_seq)
        self.tickets[ticket.wrss] = ticket
        return ticket

    def add_comment(self, room: Room, account: Account, text: str) -> Comment:
        comment = Comment(
            seq=next(self._seqs),
            msg_id=next(self._msg_ids),
            uid=account.uid,
            unique_id=account.unique_id,
            nickname=account.nickname,
            sec_uid=account.sec_uid,
            content=text,
            created_ms=now_ms(),
        )
        room.comments.append(comment)
        for conn in room.connections:
            conn.queue.put_nowait(comment)
        return comment

    def end_room(self, room: Room) -> None:
        if room.status == ENDED:
            return
        room.status = ENDED
        room.ended_ms = now_ms()
        for conn in room.connections:
            conn.queue.put_nowait(_END)


def world_of(state: SimState) -> WebcastWorld:
    with state.lock:
        world = state.extra.get("webcast")
        if not isinstance(world, WebcastWorld):
            world = WebcastWorld()
            state.extra["webcast"] = world
        return world


# -- protobuf ---------------------------------------------------------------------------------


def _chat_frame(room: Room, c: Comment) -> bytes:
    if not c.frame:
        c.frame = bytes(_chat_message(room, c))
    return c.frame


def _chat_message(room: Room, c: Comment) -> BaseProtoMessage:
    chat = WebcastChatMessage(
        common=CommonMessageData(
            method="WebcastChatMessage",
            msg_id=c.msg_id,
            room_id=int(room.room_id),
            create_time=c.created_ms,
        ),
        user=User(
            id=int(c.uid),
            id_str=c.uid,
            nickname=c.nickname,
            display_id=c.unique_id,
            sec_uid=c.sec_uid,
        ),
        content=c.content,
        content_language="en",
    )
    return BaseProtoMessage(
        method="WebcastChatMessage", payload=bytes(chat), msg_id=c.msg_id, offset=c.seq
    )


def _end_message(room: Room, msg_id: int) -> BaseProtoMessage:
    control = WebcastControlMessage(
        common=CommonMessageData(
            method="WebcastControlMessage",
            msg_id=msg_id,
            room_id=int(room.room_id),
            create_time=room.ended_ms or now_ms(),
        ),
        action=ControlAction.STREAM_ENDED,
    )
    return BaseProtoMessage(method="WebcastControlMessage", payload=bytes(control), msg_id=msg_id)


def _internal_ext(room: Room, seq: int, t: int) -> str:
    return (
        f"internal_src:dim|wss_push_room_id:{room.room_id}|wss_push_did:0"
        f"|first_req_ms:{room.created_ms}|fetch_time:{t}|seq:{seq}|wss_info:0-{t}-0-0"
    )


def _result(
    room: Room,
    messages: list[BaseProtoMessage],
    *,
    seq: int,
    push_server: str = "",
    wrss: str = "",
    is_first: bool = False,
) -> ProtoMessageFetchResult:
    t = now_ms()
    return ProtoMessageFetchResult(
        messages=messages,
        cursor=f"t-{t}_r-1",
        fetch_interval=1000,
        now=t,
        internal_ext=_internal_ext(room, seq, t),
        fetch_type=1,
        route_params={"wrss": wrss} if wrss else {},
        heartbeat_duration=10_000,
        need_ack=True,
        push_server=push_server,
        is_first=is_first,
    )


def _result_bytes(room: Room, frames: list[bytes], *, seq: int, **kwargs: Any) -> bytes:
    """`bytes(_result(room, messages, ...))` for messages already encoded: field 1 first, as
    the proto encoder writes it, then the other fields."""
    head = b"".join(encode_bytes_field(FETCH_MESSAGES_FIELD, f) for f in frames)
    return head + bytes(_result(room, [], seq=seq, **kwargs))


def _since_seq(room: Room, cursor: str, internal_ext: str) -> int:
    m = _SEQ_RE.search(internal_ext)
    if m:
        return int(m.group(1))
    m = _CURSOR_RE.match(cursor)
    if m:
        t = int(m.group(1))
        return max((c.seq for c in room.comments if c.created_ms <= t), default=0)
    return 0


# -- JSON shapes ------------------------------------------------------------------------------


def _webcast_json(data: Any, status_code: int = 0) -> JSONResponse:
    return JSONResponse({"data": data, "extra": {"now": now_ms()}, "status_code": status_code})


def _login_required() -> JSONResponse:
    msg = "Please login first"
    return _webcast_json({"message": msg, "prompts": msg}, 20003)


def _room_not_found() -> JSONResponse:
    return _webcast_json({"message": "room not found", "prompts": "This LIVE has ended"}, 30001)


def _age_restricted() -> JSONResponse:
    return _webcast_json(
        {
            "message": "Request params error",
            "prompts": "This LIVE may be inappropriate for some users. Log in to watch.",
        },
        10011,
    )


def _private_room() -> JSONResponse:
    return _webcast_json({"prompts": "This LIVE is private"}, 4003110)


def _avatar(account: Account) -> dict[str, Any]:
    url = account.avatar_url or f"https://p16-sign.tiktokcdn.com/avatar/{account.uid}~100x100.webp"
    return {"uri": f"avatar/{account.uid}", "url_list": [url]}


def _owner(account: Account) -> dict[str, Any]:
    return {
        "id": int(account.uid),
        "id_str": account.uid,
        "display_id": account.unique_id,
        "nickname": account.nickname,
        "sec_uid": account.sec_uid,
        "avatar_thumb": _avatar(account),
    }


def _room_data(room: Room, owner: Account) -> dict[str, Any]:
    base = f"https://pull-flv-l1.tiktokcdn.com/stage/stream-{room.room_id}"
    return {
        "id": int(room.room_id),
        "id_str": room.room_id,
        "status": room.status,
        "title": room.title,
        "create_time": room.created_ms // 1000,
        "finish_time": (room.ended_ms or 0) // 1000,
        "owner_user_id": int(owner.uid),
        "owner_user_id_str": owner.uid,
        "owner": _owner(owner),
        "user_count": len(room.connections),
        "stats": {
            "total_user": len(room.connections),
            "enter_count": len(room.connections),
            "comment_count": len(room.comments),
            "like_count": 0,
        },
        "age_restrict": {"restricted": room.age_restricted},
        "stream_url": {
            "flv_pull_url": {"FULL_HD1": f"{base}_or4.flv", "SD1": f"{base}_ld.flv"},
            "rtmp_pull_url": f"{base}.flv",
            "hls_pull_url": f"{base}/index.m3u8",
            "default_resolution": "FULL_HD1",
        },
    }


def _may_view(room: Room, viewer: Account | None) -> JSONResponse | None:
    """The stub TikTok answers instead of the room, or None when `viewer` may see it."""
    if room.private and (viewer is None or viewer.uid != room.owner_uid):
        return _private_room()
    if room.age_restricted and viewer is None:
        return _age_restricted()
    return None


def _ws_base(conn: HTTPConnection) -> str:
    base = str(conn.base_url).rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    return "ws://" + base.removeprefix("http://")


def _set_tt_cookies(response: Response, request: Request) -> None:
    # TikTok keeps a visitor's ttwid and rotates msToken on every answer.
    ttwid = request.cookies.get("ttwid") or (
        f"1%7C{secrets.token_urlsafe(32)}%7C{int(time.time())}%7C{secrets.token_hex(32)}"
    )
    ms_token = secrets.token_urlsafe(96)
    response.set_cookie("ttwid", ttwid, max_age=31_536_000, path="/", httponly=True)
    response.set_cookie("msToken", ms_token, max_age=864_000, path="/")
    response.headers["x-ms-token"] = ms_token


# -- control API bodies -----------------------------------------------------------------------


class RoomIn(BaseModel):
    unique_id: str
    title: str | None = None
    age_restricted: bool = False
    private: bool = False


class RoomPatch(BaseModel):
    age_restricted: bool | None = None
    private: bool | None = None
    title: str | None = None


class CommentIn(BaseModel):
    unique_id: str
    text: str


class WebcastConfigIn(BaseModel):
    ping_interval: float | None = None


def router(state: SimState) -> APIRouter:
    world = world_of(state)
    r = APIRouter()

    def viewer_of(conn: HTTPConnection) -> tuple[str | None, Account | None]:
        sessionid = conn.cookies.get("sessionid") or None
        return sessionid, state.session_account(sessionid)

    def owner_of(room: Room) -> Account:
        with state.lock:
            acc = state.accounts.get(room.owner_uid)
        if acc is None:  # accounts are never deleted; this is a broken simulator state
            raise HTTPException(500, "room owner missing")
        return acc

    # -- TikTok: webcast.tiktok.com ----------------------------------------------------------

    @r.get("/webcast/im/fetch/")
    async def im_fetch(request: Request) -> Response:
        world.record(request)
        q = request.query_params
        sessionid, viewer = viewer_of(request)
        if sessionid and viewer is None:
            return _login_required()
        room = world.rooms.get(q.get("room_id", ""))
        if room is None:
            return _room_not_found()
        stub = _may_view(room, viewer)
        if stub is not None:
            return stub
        cursor, ext = q.get("cursor", ""), q.get("internal_ext", "")
        is_first = not cursor
        if is_first:
            comments = room.comments[-HISTORY_COUNT:]
        else:
            since = _since_seq(room, cursor, ext)
            comments = [c for c in room.comments if c.seq > since]
        frames = [_chat_frame(room, c) for c in comments]
        if room.status == ENDED:
            frames.append(bytes(_end_message(room, next(world._msg_ids))))
        ticket = world.new_ticket(room, sessionid if viewer else None)
        result = _result_bytes(
            room,
            frames,
            seq=room.last_seq,
            push_server=_ws_base(request) + WS_PATH,
            wrss=ticket.wrss,
            is_first=is_first,
        )
        response = Response(result, media_type="application/protobuf")
        _set_tt_cookies(response, request)
        return response

    @r.get("/webcast/room/check_alive/")
    async def check_alive(request: Request) -> Response:
        world.record(request)
        ids = [i.strip() for i in request.query_params.get("room_ids", "").split(",")]
        data = [
            {"alive": room.status == LIVE, "room_id": int(room.room_id), "room_id_str": rid}
            for rid in ids
            if (room := world.rooms.get(rid)) is not None
        ]
        return JSONResponse({"data": data, "extra": {"now": now_ms()}, "status_code": 0})

    @r.get("/webcast/room/info/")
    async def room_info(request: Request) -> Response:
        world.record(request)
        _, viewer = viewer_of(request)
        room = world.rooms.get(request.query_params.get("room_id", ""))
        if room is None:
            return _room_not_found()
        stub = _may_view(room, viewer)
        if stub is not None:
            return stub
        return _webcast_json(_room_data(room, owner_of(room)))

    @r.post("/webcast/room/chat/")
    async def room_chat(request: Request) -> Response:
        world.record(request)
        _, viewer = viewer_of(request)
        if viewer is None:
            return _login_required()
        form = await request.form()
        room_id = str(form.get("room_id") or request.query_params.get("room_id") or "")
        content = str(form.get("content") or "").strip()
        room = world.rooms.get(room_id)
        if room is None:
            return _room_not_found()
        stub = _may_view(room, viewer)
        if stub is not None:
            return stub
        if room.status != LIVE:
            return _webcast_json({"message": "room has finished", "prompts": ""}, 30003)
        if not content:
            return _webcast_json({"message": "content is empty", "prompts": ""}, 10009)
        comment = world.add_comment(room, viewer, content)
        return _webcast_json(
            {
                "content": comment.content,
                "msg_id": comment.msg_id,
                "msg_id_str": str(comment.msg_id),
                "room_id": int(room.room_id),
                "user": _owner(viewer),
            }
        )

    @r.get("/webcast/ranklist/list/v2/")
    async def ranklist(request: Request) -> Response:
        world.record(request)
        rank_type = request.query_params.get("rank_type", "DAILY_RANK")
        # A room earns "diamonds" from its chat activity, which keeps rankings deterministic.
        score: dict[str, int] = {}
        for room in world.rooms.values():
            score[room.owner_uid] = (
                score.get(room.owner_uid, 0) + room.diamonds + 100 * len(room.comments)
            )
        ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        ranks = []
        for i, (uid, points) in enumerate(ranked, start=1):
            with state.lock:
                acc = state.accounts.get(uid)
            if acc is not None:
                ranks.append(
                    {
                        "rank": i,
                        "score": points,
                        "score_description": f"{points} diamonds",
                        "user": _owner(acc),
                    }
                )
        now = int(time.time())
        period = 3600 if "HOUR" in rank_type.upper() else 86_400
        reset_at = now - now % period + period
        return _webcast_json(
            {
                "ranks": ranks,
                "rank_type": rank_type,
                "rank_view": {"title": "Daily ranking" if period == 86_400 else "Hourly ranking"},
                "region": request.query_params.get("region", "US"),
                "next_reset_time": reset_at,
                "countdown": reset_at - now,
            }
        )

    # -- TikTok: www.tiktok.com --------------------------------------------------------------

    def user_room_payload(acc: Account, room: Room) -> dict[str, Any]:
        return {
            "user": {
                "id": acc.uid,
                "roomId": room.room_id,
                "uniqueId": acc.unique_id,
                "nickname": acc.nickname,
                "secUid": acc.sec_uid,
                "status": room.status,
                "avatarThumb": _avatar(acc)["url_list"][0],
            },
            "liveRoom": {
                "status": room.status,
                "title": room.title,
                "startTime": room.created_ms // 1000,
                "liveRoomStats": {"userCount": len(room.connections)},
            },
        }

    @r.get("/api-live/user/room/")
    async def api_user_room(request: Request) -> Response:
        world.record(request)
        unique_id = request.query_params.get("uniqueId", "").lstrip("@")
        acc = state.account_by_unique_id(unique_id)
        room = world.live_room_of(acc.uid) if acc else None
        if acc is None or room is None:
            return JSONResponse({"statusCode": 19881007, "message": "user_not_found", "data": {}})
        return JSONResponse({"statusCode": 0, "message": "", "data": user_room_payload(acc, room)})

    @r.get("/@{unique_id}/live")
    async def live_page(request: Request, unique_id: str) -> Response:
        world.record(request)
        acc = state.account_by_unique_id(unique_id)
        room = world.live_room_of(acc.uid) if acc else None
        sigi: dict[str, Any] = {"AppContext": {"appContext": {"region": "US", "language": "en"}}}
        if acc is not None and room is not None:
            sigi["LiveRoom"] = {"liveRoomUserInfo": user_room_payload(acc, room)}
        # "</" cannot appear inside the script element, as in TikTok's own serialisation.
        blob = json.dumps(sigi).replace("</", "<\\/")
        title = html.escape(f"{acc.nickname if acc else unique_id} LIVE | TikTok")
        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}'
            f'</title></head><body><div id="app"></div>'
            f'<script id="SIGI_STATE" type="application/json">{blob}</script></body></html>'
        )
        return HTMLResponse(page)

    # -- TikTok: the IM WebSocket ------------------------------------------------------------

    async def deny(ws: WebSocket, status: int, msg: str, room: Room | None) -> None:
        if room is not None:
            room.ws_log.append({"type": "rejected", "handshake_msg": msg, "at": time.time()})
        headers = {"handshake-status": str(status), "handshake-msg": msg}
        await ws.send_denial_response(Response(b"", status_code=200, headers=headers))

    @r.websocket(WS_PATH)
    async def im_ws(ws: WebSocket) -> None:
        world.record(ws, "WEBSOCKET")
        q = ws.query_params
        ticket = world.tickets.get(q.get("wrss", ""))
        room = world.rooms.get(ticket.room_id) if ticket else None
        if ticket is None or room is None or q.get("room_id", ticket.room_id) != ticket.room_id:
            await deny(ws, 417, "illegal wrss", room)
            return
        # A fetch signed with a session binds the socket to that session.
        if ticket.sessionid and ws.cookies.get("sessionid") != ticket.sessionid:
            await deny(ws, 415, "illegal secret key", room)
            return
        subprotocol = (
            "echo-protocol" if "echo-protocol" in ws.scope.get("subprotocols", []) else None
        )
        ping = f"ping-interval={world.ping_interval:g}".encode()
        await ws.accept(subprotocol=subprotocol, headers=[(b"handshake-options", ping)])
        conn = Connection(
            asyncio.Queue(), q.get("compress") == "gzip", ticket.sessionid is not None
        )
        room.connections.add(conn)
        room.ws_log.append(
            {
                "type": "connect",
                "with_session": conn.with_session,
                "compress": conn.compress,
                "query_keys": [k for k, _ in q.multi_items()],
                "cookie_names": sorted(ws.cookies.keys()),
                "at": time.time(),
            }
        )
        # Whatever happened between the fetch and this handshake is owed to the client.
        for c in room.comments:
            if c.seq > ticket.seq:
                conn.queue.put_nowait(c)
        if room.status == ENDED:
            conn.queue.put_nowait(_END)
        tasks = [
            asyncio.create_task(_reader(ws, room)),
            asyncio.create_task(_writer(ws, room, conn, world)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            room.connections.discard(conn)
            room.ws_log.append({"type": "disconnect", "at": time.time()})

    # -- control API -------------------------------------------------------------------------

    def room_or_404(room_id: str) -> Room:
        room = world.rooms.get(room_id)
        if room is None:
            raise HTTPException(404, "no such room")
        return room

    @r.post("/_sim/rooms")
    async def create_room(body: RoomIn) -> dict[str, Any]:
        acc = state.create_account(body.unique_id.lstrip("@"))
        for other in world.rooms.values():
            if other.owner_uid == acc.uid:
                world.end_room(other)
        room = Room(
            room_id=str(next(world._room_ids)),
            owner_uid=acc.uid,
            title=body.title or f"{acc.nickname} is LIVE",
            age_restricted=body.age_restricted,
            private=body.private,
        )
        world.rooms[room.room_id] = room
        return {**room.public(), "unique_id": acc.unique_id, "uid": acc.uid}

    @r.get("/_sim/rooms")
    async def list_rooms() -> list[dict[str, Any]]:
        return [room.public() for room in world.rooms.values()]

    @r.get("/_sim/rooms/{room_id}")
    async def get_room(room_id: str) -> dict[str, Any]:
        return room_or_404(room_id).public()

    @r.patch("/_sim/rooms/{room_id}")
    async def patch_room(room_id: str, body: RoomPatch) -> dict[str, Any]:
        room = room_or_404(room_id)
        for name, value in body.model_dump(exclude_none=True).items():
            setattr(room, name, value)
        return room.public()

    @r.get("/_sim/rooms/{room_id}/ws_log")
    async def get_ws_log(room_id: str) -> list[dict[str, Any]]:
        return list(room_or_404(room_id).ws_log)

    @r.delete("/_sim/rooms/{room_id}")
    async def end_room(room_id: str) -> dict[str, Any]:
        room = room_or_404(room_id)
        world.end_room(room)
        return room.public()

    @r.post("/_sim/rooms/{room_id}/comments")
    async def post_comment(room_id: str, body: CommentIn) -> dict[str, Any]:
        room = room_or_404(room_id)
        if room.status != LIVE:
            raise HTTPException(409, "the stream has ended")
        acc = state.create_account(body.unique_id.lstrip("@"))
        return world.add_comment(room, acc, body.text).public()

    @r.get("/_sim/requests")
    async def get_requests(path: str = "") -> list[dict[str, Any]]:
        return [e for e in world.requests if path in e["path"]]

    @r.delete("/_sim/requests")
    async def clear_requests() -> dict[str, Any]:
        n = len(world.requests)
        world.requests.clear()
        return {"cleared": n}

    @r.post("/_sim/webcast")
    async def configure(body: WebcastConfigIn) -> dict[str, Any]:
        if body.ping_interval is not None:
            world.ping_interval = body.ping_interval
        return {"ping_interval": world.ping_interval}

    return r


async def _reader(ws: WebSocket, room: Room) -> None:
    """Record what the client sends: im_enter_room, hb and ack frames."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            text = message.get("text")
            data = text.encode() if text is not None else b""
        entry: dict[str, Any] = {"at": time.time()}
        try:
            frame = WebcastPushFrame().parse(data)
        except Exception:
            room.ws_log.append({**entry, "type": "garbage", "length": len(data)})
            continue
        entry.update({"type": frame.payload_type, "log_id": frame.log_id, "seq_id": frame.seq_id})
        try:
            if frame.payload_type == "hb":
                entry["send_packet_seq_id"] = (
                    HeartBeatMessage().parse(frame.payload).send_packet_seq_id
                )
            elif frame.payload_type == "im_enter_room":
                enter = WebcastImEnterRoomMessage().parse(frame.payload)
                entry.update({"room_id": str(enter.room_id), "identity": enter.identity})
            elif frame.payload_type == "ack":
                entry["payload"] = frame.payload.decode("utf-8", errors="replace")
        except Exception:
            entry["undecodable"] = True
        room.ws_log.append(entry)


async def _writer(ws: WebSocket, room: Room, conn: Connection, world: WebcastWorld) -> None:
    """Push queued comments as `msg` frames, batching whatever is already waiting."""
    while True:
        items = [await conn.queue.get()]
        while not conn.queue.empty():
            items.append(conn.queue.get_nowait())
        comments = [i for i in items if isinstance(i, Comment)]
        ended = any(i is _END for i in items)
        frames = [_chat_frame(room, c) for c in comments]
        if ended:
            frames.append(bytes(_end_message(room, next(world._msg_ids))))
        seq = comments[-1].seq if comments else room.last_seq
        payload = _result_bytes(room, frames, seq=seq)
        headers = [PushHeader(key="im-cursor", value=f"t-{now_ms()}_r-1")]
        if conn.compress:
            payload = gzip.compress(payload)
            headers.append(PushHeader(key="compress_type", value="gzip"))
        frame = WebcastPushFrame(
            seq_id=seq,
            log_id=secrets.randbits(62),
            service=5,
            method=8,
            headers=headers,
            payload_encoding="pb",
            payload_type="msg",
            payload=payload,
        )
        await ws.send_bytes(bytes(frame))
        if ended:
            await ws.close(code=1000)
            return
