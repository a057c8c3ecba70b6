"""Simulator: TikTok's webcast endpoints (webcast.tiktok.com) and the live lookups of
www.tiktok.com (api-live/user/room, the live page).

Shapes follow what TikTok sends (see shared/reference/tiktok-protocol.md §3); protobuf is built
with the simulator's own schema (messages.py, wire.py). Choices where TikTok's answer is not
publicly documented:

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
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from livegate.simulator import messages
from livegate.simulator.push import WS_PATH, ws_base
from livegate.simulator.rooms import ENDED, LIVE, Room, WebcastWorld, now_ms, world_of
from livegate.simulator.state import Account, SimState, state_of

HISTORY_COUNT = 6  # what TikTok's first fetch replays; TikTokLive asks for 6 too
_SEQ_RE = re.compile(r"(?:^|\|)seq:(\d+)")
_CURSOR_RE = re.compile(r"^t-(\d+)")

router = APIRouter()


# -- JSON shapes ------------------------------------------------------------------------------


def _webcast_json(data: Any, status_code: int = 0) -> JSONResponse:
    return JSONResponse({"data": data, "extra": {"now": now_ms()}, "status_code": status_code})


def _login_required() -> JSONResponse:
    msg = "Please login first"
    return _webcast_json({"message": msg, "prompts": msg}, 20003)


def _room_not_found() -> JSONResponse:
    return _webcast_json({"message": "room not found", "prompts": "This LIVE has ended"}, 30001)


def _may_view(room: Room, viewer: Account | None) -> JSONResponse | None:
    """The stub TikTok answers instead of the room, or None when `viewer` may see it."""
    if room.private and (viewer is None or viewer.uid != room.owner_uid):
        return _webcast_json({"prompts": "This LIVE is private"}, 4003110)
    if room.age_restricted and viewer is None:
        prompt = "This LIVE may be inappropriate for some users. Log in to watch."
        return _webcast_json({"message": "Request params error", "prompts": prompt}, 10011)
    return None


def avatar(account: Account) -> dict[str, Any]:
    url = account.avatar_url or f"https://p16-sign.tiktokcdn.com/avatar/{account.uid}~100x100.webp"
    return {"uri": f"avatar/{account.uid}", "url_list": [url]}


def webcast_user(account: Account) -> dict[str, Any]:
    """An account as webcast JSON answers name a user (owner, chat sender, ranked user)."""
    return {
        "id": int(account.uid),
        "id_str": account.uid,
        "display_id": account.unique_id,
        "nickname": account.nickname,
        "sec_uid": account.sec_uid,
        "avatar_thumb": avatar(account),
    }


def _room_data(room: Room, owner: Account) -> dict[str, Any]:
    base = f"https://pull-flv-l1.tiktokcdn.com/stage/stream-{room.room_id}"
    viewers = len(room.connections) + room.viewers
    return {
        "id": int(room.room_id),
        "id_str": room.room_id,
        "status": room.status,
        "title": room.title,
        "create_time": room.created_ms // 1000,
        "finish_time": (room.ended_ms or 0) // 1000,
        "owner_user_id": int(owner.uid),
        "owner_user_id_str": owner.uid,
        "owner": webcast_user(owner),
        "user_count": viewers,
        "stats": {
            "total_user": viewers,
            "enter_count": viewers,
            "comment_count": len(room.comments),
            "like_count": room.likes,
        },
        "age_restrict": {"restricted": room.age_restricted},
        "stream_url": {
            "flv_pull_url": {"FULL_HD1": f"{base}_or4.flv", "SD1": f"{base}_ld.flv"},
            "rtmp_pull_url": f"{base}.flv",
            "hls_pull_url": f"{base}/index.m3u8",
            "default_resolution": "FULL_HD1",
        },
    }


def _user_room_payload(acc: Account, room: Room) -> dict[str, Any]:
    return {
        "user": {
            "id": acc.uid,
            "roomId": room.room_id,
            "uniqueId": acc.unique_id,
            "nickname": acc.nickname,
            "secUid": acc.sec_uid,
            "status": room.status,
            "avatarThumb": avatar(acc)["url_list"][0],
        },
        "liveRoom": {
            "status": room.status,
            "title": room.title,
            "startTime": room.created_ms // 1000,
            "liveRoomStats": {"userCount": len(room.connections)},
        },
    }


def _set_tt_cookies(response: Response, request: Request) -> None:
    # TikTok keeps a visitor's ttwid and rotates msToken on every answer.
    ttwid = request.cookies.get("ttwid") or (
        f"1%7C{secrets.token_urlsafe(32)}%7C{int(time.time())}%7C{secrets.token_hex(32)}"
    )
    ms_token = secrets.token_urlsafe(96)
    response.set_cookie("ttwid", ttwid, max_age=31_536_000, path="/", httponly=True)
    response.set_cookie("msToken", ms_token, max_age=864_000, path="/")
    response.headers["x-ms-token"] = ms_token


# -- helpers ----------------------------------------------------------------------------------


def _recorded(request: HTTPConnection) -> tuple[SimState, WebcastWorld]:
    """The simulator's state and rooms, after noting the request's shape."""
    state = state_of(request)
    world = world_of(state)
    world.record(request)
    return state, world


def _viewer(state: SimState, conn: HTTPConnection) -> tuple[str | None, Account | None]:
    sessionid = conn.cookies.get("sessionid") or None
    return sessionid, state.session_account(sessionid)


def _owner(state: SimState, room: Room) -> Account:
    with state.lock:
        acc = state.accounts.get(room.owner_uid)
    if acc is None:  # accounts are never deleted; this is a broken simulator state
        raise HTTPException(500, "room owner missing")
    return acc


def _since_seq(room: Room, cursor: str, internal_ext: str) -> int:
    m = _SEQ_RE.search(internal_ext)
    if m:
        return int(m.group(1))
    m = _CURSOR_RE.match(cursor)
    if m:
        t = int(m.group(1))
        return max((m.seq for m in room.log if m.created_ms <= t), default=0)
    return 0


# -- webcast.tiktok.com -----------------------------------------------------------------------


@router.get("/webcast/im/fetch/")
async def im_fetch(request: Request) -> Response:
    state, world = _recorded(request)
    q = request.query_params
    sessionid, viewer = _viewer(state, request)
    if sessionid and viewer is None:
        return _login_required()
    room = world.rooms.get(q.get("room_id", ""))
    if room is None:
        return _room_not_found()
    stub = _may_view(room, viewer)
    if stub is not None:
        return stub
    cursor = q.get("cursor", "")
    if not cursor:
        replayed = room.log[-HISTORY_COUNT:]
    else:
        since = _since_seq(room, cursor, q.get("internal_ext", ""))
        replayed = [m for m in room.log if m.seq > since]
    found = [messages.base_message(room, m) for m in replayed]
    if room.status == ENDED:
        found.append(messages.end_message(room, world.new_msg_id()))
    ticket = world.new_ticket(room, sessionid if viewer else None)
    result = messages.fetch_result(
        room,
        found,
        seq=room.last_seq,
        push_server=ws_base(request) + WS_PATH,
        wrss=ticket.wrss,
        is_first=not cursor,
    )
    response = Response(result.SerializeToString(), media_type="application/protobuf")
    _set_tt_cookies(response, request)
    return response


@router.get("/webcast/room/check_alive/")
async def check_alive(request: Request) -> Response:
    _, world = _recorded(request)
    ids = [i.strip() for i in request.query_params.get("room_ids", "").split(",")]
    data = [
        {"alive": room.status == LIVE, "room_id": int(room.room_id), "room_id_str": rid}
        for rid in ids
        if (room := world.rooms.get(rid)) is not None
    ]
    return _webcast_json(data)


@router.get("/webcast/room/info/")
async def room_info(request: Request) -> Response:
    state, world = _recorded(request)
    _, viewer = _viewer(state, request)
    room = world.rooms.get(request.query_params.get("room_id", ""))
    if room is None:
        return _room_not_found()
    return _may_view(room, viewer) or _webcast_json(_room_data(room, _owner(state, room)))


@router.post("/webcast/room/chat/")
async def room_chat(request: Request) -> Response:
    state, world = _recorded(request)
    _, viewer = _viewer(state, request)
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
            "user": webcast_user(viewer),
        }
    )


@router.get("/webcast/ranklist/list/v2/")
async def ranklist(request: Request) -> Response:
    state, world = _recorded(request)
    rank_type = request.query_params.get("rank_type", "DAILY_RANK")
    now = int(time.time())
    period = 3600 if "HOUR" in rank_type.upper() else 86_400
    reset_at = now - now % period + period
    return _webcast_json(
        {
            "ranks": _ranks(state, world),
            "rank_type": rank_type,
            "rank_view": {"title": "Daily ranking" if period == 86_400 else "Hourly ranking"},
            "region": request.query_params.get("region", "US"),
            "next_reset_time": reset_at,
            "countdown": reset_at - now,
        }
    )


def _ranks(state: SimState, world: WebcastWorld) -> list[dict[str, Any]]:
    # A room earns "diamonds" from its chat activity, which keeps rankings deterministic.
    score: dict[str, int] = {}
    for room in world.rooms.values():
        earned = room.diamonds + 100 * len(room.comments)
        score[room.owner_uid] = score.get(room.owner_uid, 0) + earned
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
    with state.lock:
        accounts = [(i, points, state.accounts.get(uid)) for i, (uid, points) in enumerate(ranked)]
    return [
        {
            "rank": i + 1,
            "score": points,
            "score_description": f"{points} diamonds",
            "user": webcast_user(acc),
        }
        for i, points, acc in accounts
        if acc is not None
    ]


# -- www.tiktok.com ---------------------------------------------------------------------------


@router.get("/api-live/user/room/")
async def api_user_room(request: Request) -> Response:
    state, world = _recorded(request)
    acc = state.account_by_unique_id(request.query_params.get("uniqueId", "").lstrip("@"))
    room = world.live_room_of(acc.uid) if acc else None
    if acc is None or room is None:
        return JSONResponse({"statusCode": 19881007, "message": "user_not_found", "data": {}})
    return JSONResponse({"statusCode": 0, "message": "", "data": _user_room_payload(acc, room)})


@router.get("/@{unique_id}/live")
async def live_page(request: Request, unique_id: str) -> Response:
    state, world = _recorded(request)
    acc = state.account_by_unique_id(unique_id)
    room = world.live_room_of(acc.uid) if acc else None
    sigi: dict[str, Any] = {"AppContext": {"appContext": {"region": "US", "language": "en"}}}
    if acc is not None and room is not None:
        sigi["LiveRoom"] = {"liveRoomUserInfo": _user_room_payload(acc, room)}
    # "</" cannot appear inside the script element, as in TikTok's own serialisation.
    blob = json.dumps(sigi).replace("</", "<\\/")
    title = html.escape(f"{acc.nickname if acc else unique_id} LIVE | TikTok")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}'
        f'</title></head><body><div id="app"></div>'
        f'<script id="SIGI_STATE" type="application/json">{blob}</script></body></html>'
    )
    return HTMLResponse(page)
