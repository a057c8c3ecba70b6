"""The frames of TikTok's push WebSocket, as a viewer's client reads and writes them.

Server → client: `WebcastPushFrame{payload_type: "msg"}` whose payload is a
`ProtoMessageFetchResult`, gzipped when a `compress_type: gzip` header says so. Client → server:
`im_enter_room` once connected, `hb` (HeartBeatMessage) every ping interval, and `ack`
(the frame's `log_id`, the result's `internal_ext` as payload) when a result has `need_ack`:
the shapes TikTok's web client and TikTokLive 7.0.1 send.

Read and written with upb classes built from TikTokLive's proto classes (tiktok/schema.py):
betterproto2 builds a pydantic validator for every message it parses or encodes, which made
decoding a push frame the largest part of an event upstream's CPU (docs/benchmarks.md,
"Managed event stream").
"""

from __future__ import annotations

import re
import zlib
from typing import Any, NamedTuple, Protocol

from google.protobuf.message import DecodeError
from TikTokLive import proto

from livegate.tiktok.schema import Schema

GZIP_MAGIC = b"\x1f\x8b"
# TikTok's fetch results are kilobytes; a payload that unzips past this is refused rather than
# held (a small gzip can stand for gigabytes).
MAX_RESULT_BYTES = 8 * 1024 * 1024
CONTROL_METHOD = "WebcastControlMessage"
STREAM_ENDED = 3  # ControlAction.STREAM_ENDED: TikTok's "live end"
_PING_RE = re.compile(r"ping-interval=([0-9.]+)")

_SCHEMA = Schema(
    (
        proto.WebcastPushFrame,
        proto.ProtoMessageFetchResult,
        proto.WebcastControlMessage,
        proto.HeartBeatMessage,
        proto.WebcastImEnterRoomMessage,
    )
)
# upb classes: their fields are typed only at run time, hence Any.
PushFrame: Any = _SCHEMA.classes[proto.WebcastPushFrame]
FetchResult: Any = _SCHEMA.classes[proto.ProtoMessageFetchResult]
_Control: Any = _SCHEMA.classes[proto.WebcastControlMessage]
_HeartBeat: Any = _SCHEMA.classes[proto.HeartBeatMessage]
_EnterRoom: Any = _SCHEMA.classes[proto.WebcastImEnterRoomMessage]
UPB_ERRORS = (DecodeError, ValueError)


class PushMessage(Protocol):
    """One of a fetch result's messages (`BaseProtoMessage`)."""

    method: str
    payload: bytes
    msg_id: int


class BadFrame(ValueError):
    """A frame the push server sent that does not decode."""


class MsgFrame(NamedTuple):
    frame: Any  # PushFrame
    result: Any  # FetchResult
    payload: bytes  # the fetch result as TikTok encoded it, unzipped


def decode_msg_frame(data: bytes) -> MsgFrame | None:
    """The frame and its fetch result, or None for a frame that carries no events (hb, ack,
    im_enter_room_resp...); BadFrame when it does not decode."""
    try:
        frame = PushFrame.FromString(data)
    except UPB_ERRORS as exc:
        raise BadFrame(f"undecodable push frame ({type(exc).__name__})") from None
    if frame.payload_type != "msg":
        return None
    payload = frame.payload
    gzipped = any(h.key == "compress_type" and h.value == "gzip" for h in frame.headers)
    if gzipped or payload[:2] == GZIP_MAGIC:
        payload = _gunzip(payload)
    try:
        return MsgFrame(frame, FetchResult.FromString(payload), payload)
    except UPB_ERRORS as exc:
        raise BadFrame(f"undecodable fetch result ({type(exc).__name__})") from None


def _gunzip(data: bytes) -> bytes:
    """One gzip member, unzipped to at most MAX_RESULT_BYTES (BadFrame past that)."""
    unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16: a gzip header and trailer
    try:
        out = unzip.decompress(data, MAX_RESULT_BYTES)
    except zlib.error as exc:
        raise BadFrame(f"bad gzip payload ({type(exc).__name__})") from None
    if unzip.unconsumed_tail:
        raise BadFrame(f"gzip payload unzips past {MAX_RESULT_BYTES} bytes")
    if not unzip.eof:
        raise BadFrame("bad gzip payload (truncated)")
    return out


def _frame(payload_type: str, payload: bytes, **fields: Any) -> bytes:
    frame = PushFrame(payload_type=payload_type, payload_encoding="pb", payload=payload, **fields)
    encoded: bytes = frame.SerializeToString()
    return encoded


def ack_frame(frame: Any, result: Any) -> bytes:
    """The ack of a `msg` frame (`frame`, a PushFrame) whose result (a FetchResult) asked."""
    return _frame("ack", (result.internal_ext or "-").encode(), log_id=frame.log_id)


def heartbeat_frame(room_id: str, seq: int) -> bytes:
    beat = _HeartBeat(room_id=int(room_id), send_packet_seq_id=seq)
    return _frame("hb", beat.SerializeToString())


def enter_room_frame(room_id: str) -> bytes:
    enter = _EnterRoom(
        room_id=int(room_id), live_id=12, identity="audience", filter_welcome_msg="0"
    )
    return _frame("im_enter_room", enter.SerializeToString())


def msg_frame(seq: int, log_id: int, result: bytes) -> bytes:
    """A `msg` frame carrying an encoded fetch result, uncompressed."""
    return _frame("msg", result, seq_id=seq, log_id=log_id)


def fetch_result(messages: list[PushMessage], cursor: str, internal_ext: str, now: int) -> bytes:
    """A fetch result holding these messages (a FetchResult's own, every field of them kept),
    as a push frame's payload carries them."""
    result = FetchResult(cursor=cursor, internal_ext=internal_ext, now=now, fetch_interval=1000)
    result.messages.extend(messages)
    encoded: bytes = result.SerializeToString()
    return encoded


def route_params(result: Any) -> dict[str, str]:
    """A FetchResult's `route_params` map (its schema keeps a map as its entries)."""
    return {entry.key: entry.value for entry in result.route_params}


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


def ends_stream(message: PushMessage) -> bool:
    """Whether `message` is TikTok's "live end" (a control message, action STREAM_ENDED)."""
    if message.method != CONTROL_METHOD:
        return False
    try:
        control = _Control.FromString(message.payload)
    except UPB_ERRORS:
        return False
    return int(control.action) == STREAM_ENDED
