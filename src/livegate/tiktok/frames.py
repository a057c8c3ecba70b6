"""The frames of TikTok's push WebSocket, as a viewer's client reads and writes them.

Server → client: `WebcastPushFrame{payload_type: "msg"}` whose payload is a
`ProtoMessageFetchResult`, gzipped when a `compress_type: gzip` header says so. Client → server:
`im_enter_room` once connected, `hb` (HeartBeatMessage) every ping interval, and `ack`
(the frame's `log_id`, the result's `internal_ext` as payload) when a result has `need_ack`:
the shapes TikTok's web client and TikTokLive 7.0.1 send.
"""

from __future__ import annotations

import gzip
import re
import zlib
from typing import NamedTuple

from TikTokLive.proto import (
    BaseProtoMessage,
    HeartBeatMessage,
    ProtoMessageFetchResult,
    WebcastControlMessage,
    WebcastImEnterRoomMessage,
    WebcastPushFrame,
)

GZIP_MAGIC = b"\x1f\x8b"
CONTROL_METHOD = "WebcastControlMessage"
STREAM_ENDED = 3  # ControlAction.STREAM_ENDED: TikTok's "live end"
_PING_RE = re.compile(r"ping-interval=([0-9.]+)")


class BadFrame(ValueError):
    """A frame the push server sent that does not decode."""


class MsgFrame(NamedTuple):
    frame: WebcastPushFrame
    result: ProtoMessageFetchResult
    payload: bytes  # the fetch result as TikTok encoded it, unzipped


def decode_msg_frame(data: bytes) -> MsgFrame | None:
    """The frame and its fetch result, or None for a frame that carries no events (hb, ack,
    im_enter_room_resp...); BadFrame when it does not decode."""
    try:
        frame = WebcastPushFrame().parse(data)
    except Exception as exc:  # betterproto raises whatever its parser hits
        raise BadFrame(f"undecodable push frame ({type(exc).__name__})") from None
    if frame.payload_type != "msg":
        return None
    payload = frame.payload
    gzipped = any(h.key == "compress_type" and h.value == "gzip" for h in frame.headers)
    if gzipped or payload[:2] == GZIP_MAGIC:
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadFrame(f"bad gzip payload ({type(exc).__name__})") from None
    try:
        return MsgFrame(frame, ProtoMessageFetchResult().parse(payload), payload)
    except Exception as exc:
        raise BadFrame(f"undecodable fetch result ({type(exc).__name__})") from None


def ack_frame(frame: WebcastPushFrame, result: ProtoMessageFetchResult) -> bytes:
    return bytes(
        WebcastPushFrame(
            payload_type="ack",
            payload_encoding="pb",
            log_id=frame.log_id,
            payload=(result.internal_ext or "-").encode(),
        )
    )


def heartbeat_frame(room_id: str, seq: int) -> bytes:
    beat = HeartBeatMessage(room_id=int(room_id), send_packet_seq_id=seq)
    return bytes(WebcastPushFrame(payload_type="hb", payload_encoding="pb", payload=bytes(beat)))


def enter_room_frame(room_id: str) -> bytes:
    enter = WebcastImEnterRoomMessage(
        room_id=int(room_id),
        live_id=12,
        identity="audience",
        filter_welcome_msg="0",
    )
    return bytes(
        WebcastPushFrame(payload_type="im_enter_room", payload_encoding="pb", payload=bytes(enter))
    )


def ping_interval(handshake_options: str | None, default: float) -> float:
    """The heartbeat interval TikTok asks for in `handshake-options: ping-interval=N`."""
    match = _PING_RE.search(handshake_options or "")
    if match:
        try:
            value = float(match.group(1))
        except ValueError:
            return default
        if 0.5 <= value <= 300:
            return value
    return default


def ends_stream(message: BaseProtoMessage) -> bool:
    """Whether `message` is TikTok's "live end" (a control message, action STREAM_ENDED)."""
    if message.method != CONTROL_METHOD:
        return False
    try:
        control = WebcastControlMessage().parse(message.payload)
    except Exception:
        return False
    return int(control.action) == STREAM_ENDED
