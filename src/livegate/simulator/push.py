"""Simulator: TikTok's IM WebSocket, which pushes a room's new messages after a fetch.

A fetch hands out a `wrss` (rooms.WsTicket) and names this socket as its `push_server`. The
upgrade is refused the way TikTok refuses it, HTTP 200 with `handshake-status` and
`handshake-msg` headers: `415 illegal secret key` when the fetch behind the `wrss` was made
with a session and the handshake lacks that `sessionid` cookie, `417 illegal wrss` for an
unknown `wrss`. Frames the client sends (im_enter_room, hb, ack) are noted in the room's
`ws_log` for tests to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import anyio
from fastapi import APIRouter
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from livegate.simulator import messages, wire
from livegate.simulator.rooms import (
    END,
    ENDED,
    Connection,
    Message,
    Room,
    WebcastWorld,
    now_ms,
    world_of,
)
from livegate.simulator.state import state_of

WS_PATH = "/webcast/im/ws_proxy/ws_reuse_supplement/"
PUSH_FRAMES_KEPT = 16  # a room's recent push frames, for its other sockets to reuse

router = APIRouter()


def ws_base(conn: HTTPConnection) -> str:
    """The simulator's own base URL as ws:// or wss://."""
    base = str(conn.base_url).rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    return "ws://" + base.removeprefix("http://")


async def _deny(ws: WebSocket, status: int, msg: str, room: Room | None) -> None:
    if room is not None:
        room.ws_log.append({"type": "rejected", "handshake_msg": msg, "at": time.time()})
    headers = {"handshake-status": str(status), "handshake-msg": msg}
    await ws.send_denial_response(Response(b"", status_code=200, headers=headers))


@router.websocket(WS_PATH)
async def im_ws(ws: WebSocket) -> None:
    world = world_of(state_of(ws))
    world.record(ws, "WEBSOCKET")
    q = ws.query_params
    ticket = world.tickets.get(q.get("wrss", ""))
    room = world.rooms.get(ticket.room_id) if ticket else None
    if ticket is None or room is None or q.get("room_id", ticket.room_id) != ticket.room_id:
        await _deny(ws, 417, "illegal wrss", room)
        return
    # A fetch signed with a session binds the socket to that session.
    if ticket.sessionid and ws.cookies.get("sessionid") != ticket.sessionid:
        await _deny(ws, 415, "illegal secret key", room)
        return
    subprotocol = "echo-protocol" if "echo-protocol" in ws.scope.get("subprotocols", []) else None
    ping = f"ping-interval={world.ping_interval:g}".encode()
    await ws.accept(subprotocol=subprotocol, headers=[(b"handshake-options", ping)])
    conn = Connection(asyncio.Queue(), q.get("compress") == "gzip", ticket.sessionid is not None)
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
    for m in room.log:
        if m.seq > ticket.seq:
            conn.queue.put_nowait(m)
    if room.status == ENDED:
        conn.queue.put_nowait(END)
    await _serve(ws, room, conn, world)


async def _serve(ws: WebSocket, room: Room, conn: Connection, world: WebcastWorld) -> None:
    """Read and push until either side is done, then forget the connection."""
    room.connections.add(conn)
    try:
        async with anyio.create_task_group() as tg:

            async def until_done(job: Awaitable[None]) -> None:
                # A side that fails (the client went away mid-send) ends the socket too.
                with contextlib.suppress(Exception):
                    await job
                tg.cancel_scope.cancel()

            tg.start_soon(until_done, _reader(ws, room))
            tg.start_soon(until_done, _writer(ws, room, conn, world))
            tg.start_soon(until_done, _dropper(ws, conn))
    finally:
        room.connections.discard(conn)
        room.ws_log.append({"type": "disconnect", "at": time.time()})


async def _dropper(ws: WebSocket, conn: Connection) -> None:
    """Close the socket when the drop fault hits it: 1011, no "live end" before it."""
    await conn.dropped.wait()
    await ws.close(code=1011, reason="dropped")


def _frame_entry(data: bytes) -> dict[str, Any]:
    """What the log says of one frame from the client: im_enter_room, hb, ack or garbage."""
    try:
        frame = wire.WebcastPushFrame.FromString(data)
    except Exception:
        return {"type": "garbage", "length": len(data)}
    entry: dict[str, Any] = {
        "type": frame.payload_type,
        "log_id": frame.log_id,
        "seq_id": frame.seq_id,
    }
    try:
        if frame.payload_type == "hb":
            beat = wire.HeartBeatMessage.FromString(frame.payload)
            entry["send_packet_seq_id"] = beat.send_packet_seq_id
        elif frame.payload_type == "im_enter_room":
            enter = wire.WebcastImEnterRoomMessage.FromString(frame.payload)
            entry.update({"room_id": str(enter.room_id), "identity": enter.identity})
        elif frame.payload_type == "ack":
            entry["payload"] = frame.payload.decode("utf-8", errors="replace")
    except Exception:
        entry["undecodable"] = True
    return entry


async def _reader(ws: WebSocket, room: Room) -> None:
    """Record what the client sends."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            text = message.get("text")
            data = text.encode() if text is not None else b""
        room.ws_log.append({"at": time.time(), **_frame_entry(data)})


async def _writer(ws: WebSocket, room: Room, conn: Connection, world: WebcastWorld) -> None:
    """Push queued messages as `msg` frames, batching whatever is already waiting."""
    while True:
        items = [await conn.queue.get()]
        while not conn.queue.empty():
            items.append(conn.queue.get_nowait())
        queued: list[Message] = [i for i in items if i is not END]
        ended = len(queued) < len(items)
        await ws.send_bytes(_frame(room, world, queued, ended=ended, compress=conn.compress))
        sent = now_ms()
        for message in queued:
            message.sent_ms = message.sent_ms or sent
        if ended:
            await ws.close(code=1000)
            return


def _frame(
    room: Room, world: WebcastWorld, queued: list[Message], *, ended: bool, compress: bool
) -> bytes:
    """The push frame for these messages, encoded once for every socket of the room that pushes
    the same ones (each viewer's socket gets each message, mostly at the same moment)."""
    key = (tuple(m.seq for m in queued), ended, compress)
    frame = room.push_frames.get(key)
    if frame is None:
        found = [messages.base_message(room, m) for m in queued]
        if ended:
            found.append(messages.end_message(room, world.new_msg_id()))
        seq = queued[-1].seq if queued else room.last_seq
        result = messages.fetch_result(room, found, seq=seq)
        frame = messages.push_frame(result, seq, compress=compress)
        if len(room.push_frames) >= PUSH_FRAMES_KEPT:
            del room.push_frames[next(iter(room.push_frames))]
        room.push_frames[key] = frame
    return frame
