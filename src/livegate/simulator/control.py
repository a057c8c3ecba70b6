"""The simulator's control API (tests, the demo and the phone page use it): accounts, sessions,
faults, QR logins, rooms and comments, the log of requests, WebSocket settings. JSON in and out;
DESIGN.md lists the contract."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from livegate.simulator import activity
from livegate.simulator import qr as qr_logins
from livegate.simulator.rooms import LIVE, Room, world_of
from livegate.simulator.state import Fault, state_of

router = APIRouter(prefix="/_sim")


class AccountIn(BaseModel):
    unique_id: str
    nickname: str | None = None
    idc: str | None = None


class QRActionIn(BaseModel):
    uid: str | None = None


class ActivityIn(BaseModel):
    rate_per_s: float = Field(ge=0, le=1000)
    kinds: list[activity.Kind] = Field(default_factory=lambda: list(activity.KINDS))


class RoomIn(BaseModel):
    unique_id: str
    title: str | None = None
    age_restricted: bool = False
    private: bool = False
    activity: ActivityIn | None = None


class EventIn(BaseModel):
    """One message into a room, from `unique_id` (a random fan when absent)."""

    kind: activity.Kind
    unique_id: str | None = None
    text: str = "hello"  # chat
    gift: str = "Rose"  # gift: a name or id of messages.GIFTS
    repeat_count: int = Field(1, ge=1, le=100)  # gift: the streak's length
    count: int = Field(1, ge=1, le=10_000)  # like
    action: Literal["follow", "share"] = "follow"  # social


class RoomPatch(BaseModel):
    age_restricted: bool | None = None
    private: bool | None = None
    title: str | None = None


class CommentIn(BaseModel):
    unique_id: str
    text: str


class WebcastConfigIn(BaseModel):
    ping_interval: float | None = None


# -- accounts, sessions, faults ---------------------------------------------------------------


@router.post("/accounts")
def create_account(request: Request, body: AccountIn) -> dict[str, Any]:
    return state_of(request).create_account(body.unique_id, body.nickname, body.idc).public()


@router.get("/accounts")
def list_accounts(request: Request) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.lock:
        return [a.public() for a in state.accounts.values()]


@router.post("/sessions")
def create_session(request: Request, body: AccountIn) -> dict[str, Any]:
    """A signed-in cookie jar, as the QR login would leave it, without the phone page."""
    state = state_of(request)
    acc = state.create_account(body.unique_id, body.nickname, body.idc)
    sid = state.new_session(acc.uid).sessionid
    jar = {"sessionid": sid, "sessionid_ss": sid, "sid_tt": sid, "tt-target-idc": acc.idc}
    return {"uid": acc.uid, "cookies": jar}


@router.post("/sessions/{uid}/expire")
def expire_session(request: Request, uid: str) -> dict[str, Any]:
    return {"uid": uid, "expired": state_of(request).expire_sessions(uid)}


@router.post("/faults")
def add_fault(request: Request, body: Fault) -> dict[str, Any]:
    state = state_of(request)
    echo = dataclasses.asdict(body)  # before a request can count the fault down
    with state.lock:
        state.faults.append(body)
    return echo


@router.delete("/faults")
def clear_faults(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.lock:
        n = len(state.faults)
        state.faults.clear()
    return {"cleared": n}


# -- QR logins: the phone's side --------------------------------------------------------------


@router.get("/qr")
def list_qr(
    request: Request, include_all: bool = Query(False, alias="all")
) -> list[dict[str, Any]]:
    return qr_logins.pending(state_of(request), include_all)


@router.post("/qr/{token}/{action}")
def qr_action(
    request: Request, token: str, action: str, body: QRActionIn | None = None
) -> JSONResponse:
    if action not in ("scan", "confirm", "refuse", "verify"):
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    uid = body.uid if body else None
    try:
        qr = qr_logins.transition(state_of(request), token, action, uid)
    except qr_logins.Conflict as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    return JSONResponse(qr_logins.public(qr))


# -- rooms and comments -----------------------------------------------------------------------


def _room(request: Request, room_id: str) -> Room:
    room = world_of(state_of(request)).rooms.get(room_id)
    if room is None:
        raise HTTPException(404, "no such room")
    return room


@router.post("/rooms")
async def create_room(request: Request, body: RoomIn) -> dict[str, Any]:
    state = state_of(request)
    acc = state.create_account(body.unique_id.lstrip("@"))
    world = world_of(state)
    room = world.open_room(
        acc, body.title, age_restricted=body.age_restricted, private=body.private
    )
    if body.activity is not None:
        activity.set_activity(state, world, room, body.activity.rate_per_s, body.activity.kinds)
    return {**room.public(), "unique_id": acc.unique_id, "uid": acc.uid}


@router.get("/rooms")
async def list_rooms(request: Request) -> list[dict[str, Any]]:
    return [room.public() for room in world_of(state_of(request)).rooms.values()]


@router.get("/rooms/{room_id}")
async def get_room(request: Request, room_id: str) -> dict[str, Any]:
    return _room(request, room_id).public()


@router.patch("/rooms/{room_id}")
async def patch_room(request: Request, room_id: str, body: RoomPatch) -> dict[str, Any]:
    room = _room(request, room_id)
    for name, value in body.model_dump(exclude_none=True).items():
        setattr(room, name, value)
    return room.public()


@router.get("/rooms/{room_id}/ws_log")
async def get_ws_log(request: Request, room_id: str) -> list[dict[str, Any]]:
    return list(_room(request, room_id).ws_log)


@router.delete("/rooms/{room_id}")
async def end_room(request: Request, room_id: str) -> dict[str, Any]:
    room = _room(request, room_id)
    world_of(state_of(request)).end_room(room)
    return room.public()


@router.post("/rooms/{room_id}/drop")
async def drop_push(request: Request, room_id: str) -> dict[str, Any]:
    """Fault injection: close every push WebSocket open on the room, as TikTok drops them."""
    room = _room(request, room_id)
    return {"dropped": world_of(state_of(request)).drop_connections(room)}


@router.post("/rooms/{room_id}/comments")
async def post_comment(request: Request, room_id: str, body: CommentIn) -> dict[str, Any]:
    room = _room(request, room_id)
    if room.status != LIVE:
        raise HTTPException(409, "the stream has ended")
    state = state_of(request)
    acc = state.create_account(body.unique_id.lstrip("@"))
    return world_of(state).add_comment(room, acc, body.text).public()


@router.post("/rooms/{room_id}/activity")
async def set_activity(request: Request, room_id: str, body: ActivityIn) -> dict[str, Any]:
    room = _room(request, room_id)
    if room.status != LIVE and body.rate_per_s > 0:
        raise HTTPException(409, "the stream has ended")
    state = state_of(request)
    return activity.set_activity(state, world_of(state), room, body.rate_per_s, body.kinds).public()


@router.post("/rooms/{room_id}/events")
async def post_event(request: Request, room_id: str, body: EventIn) -> list[dict[str, Any]]:
    """One message of `kind` (a gift: its whole streak), as the room's log shows them."""
    room = _room(request, room_id)
    if room.status != LIVE:
        raise HTTPException(409, "the stream has ended")
    state, world = state_of(request), world_of(state_of(request))
    if body.unique_id is None:
        return [activity.generate(state, world, room, body.kind).public()]
    sender = state.create_account(body.unique_id.lstrip("@"))
    if body.kind == "chat":
        return [world.add_comment(room, sender, body.text).public()]
    if body.kind == "gift":
        gift = activity.gift_by_name(body.gift)
        if gift is None:
            raise HTTPException(422, f"no gift {body.gift!r}")
        return [
            e.public() for e in activity.send_gifts(world, room, sender, gift, body.repeat_count)
        ]
    if body.kind == "like":
        return [activity.like(world, room, sender, body.count).public()]
    if body.kind == "member":
        return [activity.member(world, room, sender).public()]
    if body.kind == "social":
        return [activity.social(world, room, sender, body.action).public()]
    return [activity.room_user_seq(world, room).public()]


@router.get("/rooms/{room_id}/events")
async def list_events(request: Request, room_id: str, since: int = 0) -> list[dict[str, Any]]:
    """The room's log after seq `since` (its newest LOG_LIMIT messages at most)."""
    return [m.public() for m in _room(request, room_id).log if m.seq > since]


# -- what the simulator saw, and how it pushes ------------------------------------------------


@router.get("/requests")
async def get_requests(request: Request, path: str = "") -> list[dict[str, Any]]:
    return [e for e in world_of(state_of(request)).requests if path in e["path"]]


@router.delete("/requests")
async def clear_requests(request: Request) -> dict[str, Any]:
    requests = world_of(state_of(request)).requests
    n = len(requests)
    requests.clear()
    return {"cleared": n}


@router.post("/webcast")
async def configure(request: Request, body: WebcastConfigIn) -> dict[str, Any]:
    world = world_of(state_of(request))
    if body.ping_interval is not None:
        world.ping_interval = body.ping_interval
    return {"ping_interval": world.ping_interval}
