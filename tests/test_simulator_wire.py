"""The simulator's own schema (simulator/wire.py, upb) puts on the wire what it put there when
messages.py built its messages with TikTokLive's proto classes: every message kind, the fetch
result and the push frame, read back by TikTokLive's classes, equal the messages the old code
built (rebuilt here as it built them); and push.py reads the client's frames as it read them."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    Contributor,
    Gift,
    HeartBeatMessage,
    ImageModel,
    MemberMessageAction,
    ProtoMessageFetchResult,
    PushHeader,
    User,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastGiftMessage,
    WebcastImEnterRoomMessage,
    WebcastLikeMessage,
    WebcastMemberMessage,
    WebcastPushFrame,
    WebcastRoomUserSeqMessage,
    WebcastSocialMessage,
)
from TikTokLiveProto.v3.webcast.im import ControlAction
from TikTokLiveProto.v3.webcast.model.message.common import Text

from livegate.simulator import messages
from livegate.simulator.messages import GIFTS, GiftSpec
from livegate.simulator.push import _frame_entry
from livegate.simulator.rooms import Comment, Event, Room
from livegate.simulator.state import Account

ROOM = Room(
    room_id="7312345678901234567",
    owner_uid="6800000000000000001",
    title="t",
    created_ms=1_732_999_000_000,
    ended_ms=1_733_000_100_000,
)
ALICE = Account(uid="6800000000000000002", unique_id="alice", nickname="Alice ☀", sec_uid="MS4x")
BOB = Account(uid="6800000000000000003", unique_id="bob", nickname="Bob", sec_uid="")
T = 1_733_000_000_000
NOW = 1_733_000_200_000

# pydantic builds a proto class's validator on first use, resolving forward references in the
# caller's frame (betterproto2's `parse(data)` shadows TikTokLiveProto's module `data`): built
# here first.
for _cls in (
    WebcastChatMessage,
    WebcastGiftMessage,
    WebcastLikeMessage,
    WebcastMemberMessage,
    WebcastSocialMessage,
    WebcastRoomUserSeqMessage,
    WebcastControlMessage,
    ProtoMessageFetchResult,
    WebcastPushFrame,
):
    _cls()


# --- the old encoder: messages.py as it was, on TikTokLive's classes --------------------------


def old_user(acc: Account, *, avatar: bool = True) -> User:
    image = f"https://p16-sign.tiktokcdn.com/avatar/{acc.uid}~100x100.webp"
    return User(
        id=int(acc.uid),
        id_str=acc.uid,
        nickname=acc.nickname,
        display_id=acc.unique_id,
        sec_uid=acc.sec_uid,
        avatar_thumb=ImageModel(url_list=[image], uri=f"avatar/{acc.uid}") if avatar else None,
    )


def old_common(
    method: str, msg_id: int, created_ms: int, key: str = "", pattern: str = "", shown: bool = True
) -> CommonMessageData:
    return CommonMessageData(
        method=method,
        msg_id=msg_id,
        room_id=int(ROOM.room_id),
        create_time=created_ms,
        is_show_msg=shown,
        display_text=Text(key=key, default_pattern=pattern) if key else None,
    )


def old_gift(spec: GiftSpec, msg_id: int, count: int, end: bool) -> WebcastGiftMessage:
    image = f"https://p19-webcast.tiktokcdn.com/img/gift/{spec.id}.png~tplv-obj.png"
    return WebcastGiftMessage(
        common=old_common(
            "WebcastGiftMessage",
            msg_id,
            T,
            "webcast_gift_send_message",
            "{0:user} sent {1:gift} {2:string}",
        ),
        gift_id=spec.id,
        fan_ticket_count=spec.diamonds * count,
        group_count=1,
        repeat_count=count,
        combo_count=count,
        repeat_end=int(end),
        group_id=77,
        log_id=str(msg_id),
        send_type=1,
        user=old_user(BOB),
        gift=Gift(
            id=spec.id,
            name=spec.name,
            describe=f"sent {spec.name}",
            type=1 if spec.streakable else 2,
            diamond_count=spec.diamonds,
            combo=spec.streakable,
            image=ImageModel(url_list=[image], uri=f"webcast-va/{spec.id}"),
        ),
    )


def old_social(msg_id: int, action: str, count: int) -> WebcastSocialMessage:
    follow = action == "follow"
    key, pattern = (
        ("pm_main_follow_message_viewer_2", "{0:user} followed the LIVE creator")
        if follow
        else ("pm_mt_guidance_share", "{0:user} shared the LIVE")
    )
    return WebcastSocialMessage(
        common=old_common("WebcastSocialMessage", msg_id, T, key, pattern),
        action=1 if follow else 3,
        share_type=0 if follow else 1,
        follow_count=count if follow else 0,
        share_count=0 if follow else count,
        user=old_user(ALICE),
    )


def old_room_user_seq(msg_id: int, total: int, top: list[tuple[Account, int]]) -> Any:
    return WebcastRoomUserSeqMessage(
        common=old_common("WebcastRoomUserSeqMessage", msg_id, T),
        ranks=[
            Contributor(score=score, user=old_user(acc), rank=i + 1)
            for i, (acc, score) in enumerate(top)
        ],
        total=total,
        pop_str=str(total),
        popularity=total,
        total_user=total,
    )


CHAT = Comment(4, 9001, ALICE.uid, "alice", "Alice ☀", "MS4x", 'hi 👋 "x"', T)


def old_chat() -> WebcastChatMessage:
    return WebcastChatMessage(
        common=old_common("WebcastChatMessage", 9001, T, shown=False),
        content='hi 👋 "x"',
        content_language="en",
        user=old_user(ALICE, avatar=False),
    )


def old_end(msg_id: int) -> WebcastControlMessage:
    return WebcastControlMessage(
        common=old_common("WebcastControlMessage", msg_id, ROOM.ended_ms or 0, shown=False),
        action=ControlAction.STREAM_ENDED,
    )


# --- each message kind ------------------------------------------------------------------------


def cases() -> list[tuple[str, bytes, Any]]:
    """(name, the new encoding, the message the old code built)."""
    out: list[tuple[str, bytes, Any]] = []
    for spec in GIFTS:
        for count, end in ((1, False), (5, False), (5, True)):
            new = messages.gift_message(
                ROOM, 9100 + count, T, BOB, spec, group_id=77, repeat_count=count, repeat_end=end
            )
            out.append(
                (f"gift-{spec.name}-{count}-{end}", new, old_gift(spec, 9100 + count, count, end))
            )
    out += [
        (
            "like",
            messages.like_message(ROOM, 9201, T, ALICE, 15, 1200),
            WebcastLikeMessage(
                common=old_common(
                    "WebcastLikeMessage", 9201, T, "pm_mt_msg_viewer", "{0:user} liked the LIVE"
                ),
                count=15,
                total=1200,
                user=old_user(ALICE),
            ),
        ),
        (
            "member",
            messages.member_message(ROOM, 9202, T, BOB, 33),
            WebcastMemberMessage(
                common=old_common(
                    "WebcastMemberMessage", 9202, T, "live_room_enter_toast", "{0:user} joined"
                ),
                member_count=33,
                action=MemberMessageAction.JOINED,
                user_id=int(BOB.uid),
                user=old_user(BOB),
            ),
        ),
        (
            "follow",
            messages.social_message(ROOM, 9203, T, ALICE, "follow", 4),
            old_social(9203, "follow", 4),
        ),
        (
            "share",
            messages.social_message(ROOM, 9204, T, ALICE, "share", 2),
            old_social(9204, "share", 2),
        ),
        (
            "room-user-seq",
            messages.room_user_seq_message(ROOM, 9205, T, 512, [(ALICE, 3000), (BOB, 10)]),
            old_room_user_seq(9205, 512, [(ALICE, 3000), (BOB, 10)]),
        ),
        (
            "room-user-seq-empty",
            messages.room_user_seq_message(ROOM, 9206, T, 0, []),
            old_room_user_seq(9206, 0, []),
        ),
        ("chat", messages.chat_message(ROOM, CHAT).payload, old_chat()),
        ("end", messages.end_message(ROOM, 9002).payload, old_end(9002)),
    ]
    return out


def assert_same_wire(new: bytes, old: Any) -> None:
    """`new` reads back, with TikTokLive's class, as the message the old code encoded."""
    cls = type(old)
    assert cls().parse(new) == cls().parse(bytes(old))
    # The same fields with the same values encode to the same length whatever their order; a
    # field TikTokLive's class does not know (and so leaves out of its equality) would not.
    assert len(new) == len(bytes(old))


@pytest.mark.parametrize(
    ("name", "new", "old"), cases(), ids=lambda c: c if isinstance(c, str) else ""
)
def test_each_message_kind_reads_back_as_the_old_encoding(name: str, new: bytes, old: Any) -> None:
    assert_same_wire(new, old)


def test_the_base_messages_carry_what_they_did() -> None:
    chat = messages.base_message(ROOM, CHAT)
    assert_same_wire(
        chat.SerializeToString(),
        BaseProtoMessage(
            method="WebcastChatMessage", payload=bytes(old_chat()), msg_id=9001, offset=4
        ),
    )
    like = Event(5, 9300, "WebcastLikeMessage", T, b"\x10\x03", {})
    assert_same_wire(
        messages.base_message(ROOM, like).SerializeToString(),
        BaseProtoMessage(method="WebcastLikeMessage", payload=b"\x10\x03", msg_id=9300, offset=5),
    )
    assert_same_wire(
        messages.end_message(ROOM, 9002).SerializeToString(),
        BaseProtoMessage(method="WebcastControlMessage", payload=bytes(old_end(9002)), msg_id=9002),
    )


# --- the fetch result and the push frame ------------------------------------------------------


def old_result(found: list[BaseProtoMessage], seq: int, **kw: Any) -> ProtoMessageFetchResult:
    wrss = kw.pop("wrss", "")
    ext = (
        f"internal_src:dim|wss_push_room_id:{ROOM.room_id}|wss_push_did:0"
        f"|first_req_ms:{ROOM.created_ms}|fetch_time:{NOW}|seq:{seq}|wss_info:0-{NOW}-0-0"
    )
    return ProtoMessageFetchResult(
        messages=found,
        cursor=f"t-{NOW}_r-1",
        fetch_interval=1000,
        now=NOW,
        internal_ext=ext,
        fetch_type=1,
        route_params={"wrss": wrss} if wrss else {},
        heartbeat_duration=10_000,
        need_ack=True,
        **kw,
    )


def old_found() -> list[BaseProtoMessage]:
    return [
        BaseProtoMessage(
            method="WebcastChatMessage", payload=bytes(old_chat()), msg_id=9001, offset=4
        ),
        BaseProtoMessage(method="WebcastControlMessage", payload=bytes(old_end(9002)), msg_id=9002),
    ]


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "now_ms", lambda: NOW)


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    "kw",
    [{}, {"push_server": "ws://127.0.0.1:8100/webcast/im/ws/", "wrss": "abc", "is_first": True}],
    ids=["push", "fetch"],
)
def test_the_fetch_result_reads_back_as_the_old_encoding(kw: dict[str, Any]) -> None:
    found = [messages.chat_message(ROOM, CHAT), messages.end_message(ROOM, 9002)]
    result = messages.fetch_result(ROOM, found, seq=7, **kw)
    assert_same_wire(result.SerializeToString(), old_result(old_found(), 7, **kw))


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize("compress", [False, True])
def test_the_push_frame_reads_back_as_the_old_encoding(compress: bool) -> None:
    found = [messages.chat_message(ROOM, CHAT), messages.end_message(ROOM, 9002)]
    frame_bytes = messages.push_frame(
        messages.fetch_result(ROOM, found, seq=7), 7, compress=compress
    )
    frame = WebcastPushFrame().parse(frame_bytes)
    result = old_result(old_found(), 7)
    payload = bytes(result)
    headers = [PushHeader(key="im-cursor", value=result.cursor)]
    if compress:  # gzip stamps the time: the payloads are compared unpacked
        assert frame.payload[:2] == b"\x1f\x8b"
        frame.payload = gzip.decompress(frame.payload)
        headers.append(PushHeader(key="compress_type", value="gzip"))
    old = WebcastPushFrame(
        seq_id=7,
        log_id=frame.log_id,  # random, as it was
        service=5,
        method=8,
        headers=headers,
        payload_encoding="pb",
        payload_type="msg",
        payload=payload,
    )
    assert 0 < frame.log_id < 2**62
    assert frame == WebcastPushFrame().parse(bytes(old))
    assert_same_wire(frame.payload, result)


# --- the client's frames, as push.py reads them ----------------------------------------------


def client_frame(payload_type: str, payload: bytes) -> bytes:
    return bytes(WebcastPushFrame(seq_id=3, log_id=42, payload_type=payload_type, payload=payload))


@pytest.mark.parametrize(
    ("data", "entry"),
    [
        (
            client_frame("hb", bytes(HeartBeatMessage(send_packet_seq_id=12))),
            {"type": "hb", "log_id": 42, "seq_id": 3, "send_packet_seq_id": 12},
        ),
        (
            client_frame(
                "im_enter_room",
                bytes(WebcastImEnterRoomMessage(room_id=int(ROOM.room_id), identity="audience")),
            ),
            {
                "type": "im_enter_room",
                "log_id": 42,
                "seq_id": 3,
                "room_id": ROOM.room_id,
                "identity": "audience",
            },
        ),
        (
            client_frame("ack", b"\x01\x02ok"),
            {"type": "ack", "log_id": 42, "seq_id": 3, "payload": "\x01\x02ok"},
        ),
        (
            client_frame("hb", b"\x10"),  # a varint cut short
            {"type": "hb", "log_id": 42, "seq_id": 3, "undecodable": True},
        ),
        (b"\x0a\xff\xff\x03abc", {"type": "garbage", "length": 7}),
    ],
    ids=["hb", "im_enter_room", "ack", "bad-hb", "garbage"],
)
def test_the_clients_frames_are_read_as_before(data: bytes, entry: dict[str, Any]) -> None:
    assert _frame_entry(data) == entry
