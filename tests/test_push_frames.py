"""tiktok/frames.py reads and writes the push WebSocket's frames with upb classes built from
TikTokLive's proto classes: checked here against TikTokLive's own (betterproto2) encoder and
parser, which share nothing with them."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    HeartBeatMessage,
    ProtoMessageFetchResult,
    PushHeader,
    WebcastControlMessage,
    WebcastImEnterRoomMessage,
    WebcastPushFrame,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from livegate.tiktok import frames, push


def _result() -> ProtoMessageFetchResult:
    return ProtoMessageFetchResult(
        messages=[
            BaseProtoMessage(
                method="WebcastChatMessage", payload=b"\x0a\x02hi", msg_id=11, offset=4
            ),
            BaseProtoMessage(
                method="WebcastLikeMessage", payload=b"\x10\x05", msg_id=12, msg_type=2
            ),
        ],
        cursor="t-1_r-1",
        internal_ext="internal_src:dim|seq:2",
        need_ack=True,
        route_params={"wrss": "abc", "x": "y"},
        push_server="wss://push.example/ws/",
        heartbeat_duration=10_000,
    )


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_msg_frame_decodes_to_its_result_and_the_bytes_it_carried(gzipped: bool) -> None:
    payload = bytes(_result())
    headers = [PushHeader(key="im-cursor", value="t-1_r-1")]
    if gzipped:
        headers.append(PushHeader(key="compress_type", value="gzip"))
    carried = gzip.compress(payload) if gzipped else payload
    data = bytes(
        WebcastPushFrame(seq_id=3, log_id=77, payload_type="msg", headers=headers, payload=carried)
    )
    decoded = frames.decode_msg_frame(data)
    assert decoded is not None
    assert decoded.payload == payload
    assert decoded.frame.log_id == 77 and decoded.frame.seq_id == 3
    result = decoded.result
    assert [(m.method, m.payload, m.msg_id) for m in result.messages] == [
        ("WebcastChatMessage", b"\x0a\x02hi", 11),
        ("WebcastLikeMessage", b"\x10\x05", 12),
    ]
    assert (result.cursor, result.internal_ext, result.need_ack) == (
        "t-1_r-1",
        "internal_src:dim|seq:2",
        True,
    )
    assert frames.route_params(result) == {"wrss": "abc", "x": "y"}
    assert result.push_server == "wss://push.example/ws/"
    assert result.heartbeat_duration == 10_000


def test_frames_without_events_are_none() -> None:
    for kind in ("hb", "ack", "im_enter_room_resp"):
        assert frames.decode_msg_frame(bytes(WebcastPushFrame(payload_type=kind))) is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\xff\xff\x03abc",  # a length past the end
        bytes(WebcastPushFrame(payload_type="msg", payload=b"\x1f\x8bnot gzip")),
        bytes(WebcastPushFrame(payload_type="msg", payload=b"\x0a\x05ab")),  # result cut short
    ],
    ids=["frame", "gzip", "result"],
)
def test_undecodable_frames_are_bad_frames(data: bytes) -> None:
    with pytest.raises(frames.BadFrame):
        frames.decode_msg_frame(data)


def test_the_frames_the_client_sends_parse_with_tiktoklives_classes() -> None:
    decoded = frames.decode_msg_frame(
        bytes(WebcastPushFrame(log_id=99, payload_type="msg", payload=bytes(_result())))
    )
    assert decoded is not None
    ack = WebcastPushFrame().parse(frames.ack_frame(decoded.frame, decoded.result))
    assert (ack.payload_type, ack.payload_encoding, ack.log_id) == ("ack", "pb", 99)
    assert ack.payload == b"internal_src:dim|seq:2"

    hb = WebcastPushFrame().parse(frames.heartbeat_frame("7001", 4))
    assert (hb.payload_type, hb.payload_encoding) == ("hb", "pb")
    beat = HeartBeatMessage().parse(hb.payload)
    assert (beat.room_id, beat.send_packet_seq_id) == (7001, 4)

    enter = WebcastPushFrame().parse(frames.enter_room_frame("7001"))
    assert enter.payload_type == "im_enter_room"
    room = WebcastImEnterRoomMessage().parse(enter.payload)
    assert (room.room_id, room.live_id, room.identity) == (7001, 12, "audience")
    assert room.filter_welcome_msg == "0"


def test_a_msg_frame_built_for_subscribers_parses_with_tiktoklives_classes() -> None:
    messages = list(frames.FetchResult.FromString(bytes(_result())).messages)
    data = frames.msg_frame(5, 1234, frames.fetch_result(messages, "c-9", "ext", 1_700_000))
    frame = WebcastPushFrame().parse(data)
    assert (frame.seq_id, frame.log_id, frame.payload_type) == (5, 1234, "msg")
    result = ProtoMessageFetchResult().parse(frame.payload)
    assert result.messages == _result().messages
    assert (result.cursor, result.internal_ext, result.now) == ("c-9", "ext", 1_700_000)
    assert result.fetch_interval == 1000


def test_live_end_is_a_control_message_with_action_3() -> None:
    def control(action: int) -> BaseProtoMessage:
        # Not a local `common`: pydantic resolves the proto classes' forward references in
        # the caller's frame, where it would shadow TikTokLiveProto's module of that name.
        head = CommonMessageData(method="WebcastControlMessage", msg_id=1)
        payload = bytes(WebcastControlMessage(common=head, action=action))
        return BaseProtoMessage(method="WebcastControlMessage", payload=payload)

    assert frames.ends_stream(control(3))
    assert not frames.ends_stream(control(1))
    assert not frames.ends_stream(BaseProtoMessage(method="WebcastControlMessage", payload=b"\xff"))
    chat = BaseProtoMessage(method="WebcastChatMessage", payload=bytes(control(3).payload))
    assert not frames.ends_stream(chat)


def test_a_gzip_that_unzips_past_the_bound_is_a_bad_frame() -> None:
    bomb = gzip.compress(b"\0" * (frames.MAX_RESULT_BYTES + 1))
    data = bytes(WebcastPushFrame(payload_type="msg", payload=bomb))
    with pytest.raises(frames.BadFrame, match="unzips past"):
        frames.decode_msg_frame(data)
    cut = gzip.compress(bytes(_result()))[:-6]
    with pytest.raises(frames.BadFrame, match="truncated"):
        frames.decode_msg_frame(bytes(WebcastPushFrame(payload_type="msg", payload=cut)))


async def test_a_push_frame_over_the_bound_closes_the_socket() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"\0" * (push.MAX_FRAME_BYTES + 1))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await push.open_push(
            f"ws://127.0.0.1:{port}/", cookies={}, user_agent=None, subprotocols=[]
        )
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                async for _ in socket.frames():
                    pass
        assert closed.value.sent is not None
        assert closed.value.sent.code == 1009  # message too big
