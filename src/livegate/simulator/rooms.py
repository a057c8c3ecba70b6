"""The simulator's LIVE rooms: their log of messages (comments and the generated gifts, likes,
joins...), the WebSocket tickets a fetch hands out, and the sockets open on each room. Plain
data and the rules that change it; no HTTP."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from livegate.simulator.state import Account, SimState

LIVE, ENDED = 2, 4
WRSS_TTL = 300.0  # signed WS URLs die quickly upstream; keep the fake lenient but bounded
END = object()  # queued to a connection when its room's stream ends
# A room keeps its newest messages only: fetches replay from it, and a room that generates
# activity for hours must not grow without bound.
LOG_LIMIT = 2000


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
    # The encoded WebcastChatMessage, made once by messages.chat_message and reused by every
    # fetch and push that carries the comment.
    payload: bytes = field(default=b"", repr=False, compare=False)
    # When a push frame first carried it to a socket (0: not yet pushed); a benchmark's
    # latency starts there, not at creation, which a busy simulator may push late.
    sent_ms: int = field(default=0, compare=False)
    method = "WebcastChatMessage"

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "msg_id": str(self.msg_id),
            "type": self.method,
            "uid": self.uid,
            "unique_id": self.unique_id,
            "nickname": self.nickname,
            "content": self.content,
            "created_ms": self.created_ms,
            "sent_ms": self.sent_ms or None,
        }


@dataclass(slots=True)
class Event:
    """One generated message of a room's log other than a comment (gift, like, join...),
    encoded once when made; `summary` is what the control API shows of it."""

    seq: int
    msg_id: int
    method: str
    created_ms: int
    payload: bytes = field(repr=False)
    summary: dict[str, Any]
    sent_ms: int = 0  # as Comment's

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "msg_id": str(self.msg_id),
            "type": self.method,
            "created_ms": self.created_ms,
            "sent_ms": self.sent_ms or None,
            **self.summary,
        }


Message = Comment | Event


@dataclass(eq=False)
class Connection:
    """One open IM WebSocket: what it still has to push (messages, then maybe END)."""

    queue: asyncio.Queue[Any]
    compress: bool
    with_session: bool
    # Set by the drop fault (`POST /_sim/rooms/{id}/drop`): the socket closes as TikTok's do.
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


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
    log: list[Message] = field(default_factory=list)  # every message, comments included
    ws_log: list[dict[str, Any]] = field(default_factory=list)
    connections: set[Connection] = field(default_factory=set)
    # The push frames made lately, by (message seqs, ended, gzipped): simulator.push's own.
    push_frames: dict[tuple[Any, ...], bytes] = field(default_factory=dict)
    diamonds: int = 0
    likes: int = 0
    viewers: int = 0  # simulated audience: joins add to it, room-user-seq reports it
    # Owned by simulator.activity: the generator's settings, task and gift streak in progress.
    activity: Any = None

    @property
    def last_seq(self) -> int:
        return self.log[-1].seq if self.log else 0

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
            "event_count": len(self.log),
            "likes": self.likes,
            "viewers": self.viewers,
            "diamonds": self.diamonds,
            "activity": self.activity.public() if self.activity else None,
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
        """The newest room `uid` owns, live or ended; None when there is none."""
        rooms = [r for r in self.rooms.values() if r.owner_uid == uid]
        return max(rooms, key=lambda r: r.created_ms, default=None)

    def new_msg_id(self) -> int:
        return next(self._msg_ids)

    def new_seq(self) -> int:
        return next(self._seqs)

    def publish(self, room: Room, message: Message) -> None:
        """Append `message` to the room's log and queue it to every open socket."""
        room.log.append(message)
        if isinstance(message, Comment):
            room.comments.append(message)
            if len(room.comments) > LOG_LIMIT:
                del room.comments[: len(room.comments) - LOG_LIMIT]
        if len(room.log) > LOG_LIMIT:
            del room.log[: len(room.log) - LOG_LIMIT]
        for conn in room.connections:
            conn.queue.put_nowait(message)

    def new_ticket(self, room: Room, sessionid: str | None) -> WsTicket:
        # Tickets sit in creation order: expired ones are dropped from the front.
        cutoff = time.monotonic() - WRSS_TTL
        while self.tickets:
            oldest = next(iter(self.tickets.values()))
            if oldest.created >= cutoff:
                break
            del self.tickets[oldest.wrss]
        ticket = WsTicket(secrets.token_urlsafe(32), room.room_id, sessionid, room.last_seq)
        self.tickets[ticket.wrss] = ticket
        return ticket

    def open_room(
        self, owner: Account, title: str | None, *, age_restricted: bool, private: bool
    ) -> Room:
        """A new live room of `owner`; the owner's earlier rooms end, as a new LIVE ends the old."""
        for other in self.rooms.values():
            if other.owner_uid == owner.uid:
                self.end_room(other)
        room = Room(
            room_id=str(next(self._room_ids)),
            owner_uid=owner.uid,
            title=title or f"{owner.nickname} is LIVE",
            age_restricted=age_restricted,
            private=private,
        )
        self.rooms[room.room_id] = room
        return room

    def add_comment(self, room: Room, account: Account, text: str) -> Comment:
        comment = Comment(
            seq=self.new_seq(),
            msg_id=self.new_msg_id(),
            uid=account.uid,
            unique_id=account.unique_id,
            nickname=account.nickname,
            sec_uid=account.sec_uid,
            content=text,
            created_ms=now_ms(),
        )
        self.publish(room, comment)
        return comment

    def drop_connections(self, room: Room) -> int:
        """Close every push socket open on `room`, as TikTok drops them now and then."""
        for conn in room.connections:
            conn.dropped.set()
        return len(room.connections)

    def end_room(self, room: Room) -> None:
        if room.status == ENDED:
            return
        room.status = ENDED
        room.ended_ms = now_ms()
        if room.activity is not None:
            room.activity.stop()
        for conn in room.connections:
            conn.queue.put_nowait(END)


def world_of(state: SimState) -> WebcastWorld:
    with state.lock:
        world = state.extra.get("webcast")
        if not isinstance(world, WebcastWorld):
            world = WebcastWorld()
            state.extra["webcast"] = world
        return world
