"""The protobuf the simulator sends, built with TikTokLive's proto classes: a fetch result
and the push frames of the IM WebSocket. It shares no encoder with the gateway it checks."""

from __future__ import annotations

import gzip
import secrets

from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    ProtoMessageFetchResult,
    PushHeader,
    User,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastPushFrame,
)
from TikTokLiveProto.v3.webcast.im import ControlAction

from livegate.simulator.rooms import Comment, Room, now_ms


def chat_message(room: Room, c: Comment) -> BaseProtoMessage:
    if not c.payload:
        c.payload = bytes(
            WebcastChatMessage(
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
        )
    return BaseProtoMessage(
        method="WebcastChatMessage", payload=c.payload, msg_id=c.msg_id, offset=c.seq
    )


def end_message(room: Room, msg_id: int) -> BaseProtoMessage:
    """What TikTok's clients see as "live end": a control message, action STREAM_ENDED."""
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


def fetch_result(
    room: Room,
    messages: list[BaseProtoMessage],
    *,
    seq: int,
    push_server: str = "",
    wrss: str = "",
    is_first: bool = False,
) -> ProtoMessageFetchResult:
    """A fetch result (im/fetch's answer, a push frame's payload) covering up to `seq`."""
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


def push_frame(result: ProtoMessageFetchResult, seq: int, *, compress: bool) -> bytes:
    """A `msg` frame of the IM WebSocket carrying `result`, gzipped when the client asked."""
    payload = bytes(result)
    headers = [PushHeader(key="im-cursor", value=result.cursor)]
    if compress:
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
    return bytes(frame)
