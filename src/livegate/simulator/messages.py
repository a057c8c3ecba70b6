"""The protobuf the simulator sends, encoded with its own schema (wire.py): the room's messages
(chat, gift, like, member, social, room-user-seq, control), a fetch result and the push frames
of the IM WebSocket. It shares no encoder with the gateway it checks.

The fields set are the ones TikTok sends and the client libraries read: TikTokLive 7.0.1
(`GiftEvent.streaking` reads `gift.type == 1` and `repeat_end`; Follow/ShareEvent read
`common.display_text.key`) and the Euler SDK's decoder, which uses the same wire numbers."""

from __future__ import annotations

import gzip
import secrets
from dataclasses import dataclass
from functools import lru_cache

from google.protobuf.message import Message as Proto

from livegate.simulator import wire
from livegate.simulator.rooms import Comment, Message, Room, now_ms
from livegate.simulator.state import Account

MEMBER_JOINED = 1  # MemberMessageAction.JOINED
STREAM_ENDED = 3  # ControlAction.STREAM_ENDED


@dataclass(frozen=True)
class GiftSpec:
    id: int
    name: str
    diamonds: int
    streakable: bool  # TikTok's gift type 1: sent in streaks, repeat_count growing


GIFTS = (
    GiftSpec(5655, "Rose", 1, True),
    GiftSpec(5269, "TikTok", 1, True),
    GiftSpec(5487, "Finger Heart", 5, True),
    GiftSpec(5760, "Weights", 1, True),
    GiftSpec(11046, "Galaxy", 1000, False),
    GiftSpec(6369, "Lion", 29999, False),
)


# A sender's User and a gift's Gift never change: made once, copied into each message.
@lru_cache(maxsize=4096)
def _user(uid: str, nickname: str, unique_id: str, sec_uid: str, avatar: bool) -> Proto:
    user = wire.User(
        id=int(uid), id_str=uid, nickname=nickname, display_id=unique_id, sec_uid=sec_uid
    )
    if avatar:
        image = f"https://p16-sign.tiktokcdn.com/avatar/{uid}~100x100.webp"
        user.avatar_thumb.url_list.append(image)
        user.avatar_thumb.uri = f"avatar/{uid}"
    return user


def _user_of(acc: Account) -> Proto:
    return _user(acc.uid, acc.nickname, acc.unique_id, acc.sec_uid, True)


@lru_cache(maxsize=64)
def _gift(spec: GiftSpec) -> Proto:
    gift = wire.Gift(
        id=spec.id,
        name=spec.name,
        describe=f"sent {spec.name}",
        type=1 if spec.streakable else 2,
        diamond_count=spec.diamonds,
        combo=spec.streakable,
    )
    gift.image.url_list.append(
        f"https://p19-webcast.tiktokcdn.com/img/gift/{spec.id}.png~tplv-obj.png"
    )
    gift.image.uri = f"webcast-va/{spec.id}"
    return gift


# Fields are set on the message's own sub-messages: upb copies a sub-message passed to a
# constructor, which costs twice as much.
def _common(
    msg: Proto,
    room: Room,
    msg_id: int,
    created_ms: int,
    key: str = "",
    pattern: str = "",
    *,
    shown: bool = True,
) -> None:
    """Fill in `msg.common`; a message's method is its type's name."""
    common = msg.common
    common.method = msg.DESCRIPTOR.name
    common.msg_id = msg_id
    common.room_id = int(room.room_id)
    common.create_time = created_ms
    common.is_show_msg = shown
    if key:
        common.display_text.key = key
        common.display_text.default_pattern = pattern


def gift_message(
    room: Room,
    msg_id: int,
    created_ms: int,
    sender: Account,
    spec: GiftSpec,
    *,
    group_id: int,
    repeat_count: int,
    repeat_end: bool,
) -> bytes:
    msg = wire.WebcastGiftMessage(
        gift_id=spec.id,
        fan_ticket_count=spec.diamonds * repeat_count,
        group_count=1,
        repeat_count=repeat_count,
        combo_count=repeat_count,
        repeat_end=int(repeat_end),
        group_id=group_id,
        log_id=str(msg_id),
        send_type=1,
    )
    key, pattern = "webcast_gift_send_message", "{0:user} sent {1:gift} {2:string}"
    _common(msg, room, msg_id, created_ms, key, pattern)
    msg.user.CopyFrom(_user_of(sender))
    msg.gift.CopyFrom(_gift(spec))
    return msg.SerializeToString()


def like_message(
    room: Room, msg_id: int, created_ms: int, sender: Account, count: int, total: int
) -> bytes:
    msg = wire.WebcastLikeMessage(count=count, total=total)
    _common(msg, room, msg_id, created_ms, "pm_mt_msg_viewer", "{0:user} liked the LIVE")
    msg.user.CopyFrom(_user_of(sender))
    return msg.SerializeToString()


def member_message(
    room: Room, msg_id: int, created_ms: int, sender: Account, member_count: int
) -> bytes:
    msg = wire.WebcastMemberMessage(
        member_count=member_count, action=MEMBER_JOINED, user_id=int(sender.uid)
    )
    _common(msg, room, msg_id, created_ms, "live_room_enter_toast", "{0:user} joined")
    msg.user.CopyFrom(_user_of(sender))
    return msg.SerializeToString()


def social_message(
    room: Room, msg_id: int, created_ms: int, sender: Account, action: str, count: int
) -> bytes:
    """A follow (action 1) or a share (action 3); the clients tell them apart by the key."""
    follow = action == "follow"
    key, pattern = (
        ("pm_main_follow_message_viewer_2", "{0:user} followed the LIVE creator")
        if follow
        else ("pm_mt_guidance_share", "{0:user} shared the LIVE")
    )
    msg = wire.WebcastSocialMessage(
        action=1 if follow else 3,
        share_type=0 if follow else 1,
        follow_count=count if follow else 0,
        share_count=0 if follow else count,
    )
    _common(msg, room, msg_id, created_ms, key, pattern)
    msg.user.CopyFrom(_user_of(sender))
    return msg.SerializeToString()


def room_user_seq_message(
    room: Room, msg_id: int, created_ms: int, total: int, top: list[tuple[Account, int]]
) -> bytes:
    """The viewer count, with the top gifters as TikTok ranks them."""
    msg = wire.WebcastRoomUserSeqMessage(
        total=total, pop_str=str(total), popularity=total, total_user=total
    )
    _common(msg, room, msg_id, created_ms)
    for i, (acc, score) in enumerate(top):
        rank = msg.ranks.add(score=score, rank=i + 1)
        rank.user.CopyFrom(_user_of(acc))
    return msg.SerializeToString()


def base_message(room: Room, message: Message) -> Proto:
    """A message of the room's log as a fetch result or push frame carries it."""
    if isinstance(message, Comment):
        return chat_message(room, message)
    return wire.BaseProtoMessage(
        method=message.method, payload=message.payload, msg_id=message.msg_id, offset=message.seq
    )


def chat_message(room: Room, c: Comment) -> Proto:
    if not c.payload:
        chat = wire.WebcastChatMessage(content=c.content, content_language="en")
        _common(chat, room, c.msg_id, c.created_ms, shown=False)
        chat.user.CopyFrom(_user(c.uid, c.nickname, c.unique_id, c.sec_uid, False))
        c.payload = chat.SerializeToString()
    return wire.BaseProtoMessage(
        method="WebcastChatMessage", payload=c.payload, msg_id=c.msg_id, offset=c.seq
    )


def end_message(room: Room, msg_id: int) -> Proto:
    """What TikTok's clients see as "live end": a control message, action STREAM_ENDED."""
    control = wire.WebcastControlMessage(action=STREAM_ENDED)
    _common(control, room, msg_id, room.ended_ms or now_ms(), shown=False)
    return wire.BaseProtoMessage(
        method="WebcastControlMessage", payload=control.SerializeToString(), msg_id=msg_id
    )


def _internal_ext(room: Room, seq: int, t: int) -> str:
    return (
        f"internal_src:dim|wss_push_room_id:{room.room_id}|wss_push_did:0"
        f"|first_req_ms:{room.created_ms}|fetch_time:{t}|seq:{seq}|wss_info:0-{t}-0-0"
    )


def fetch_result(
    room: Room,
    messages: list[Proto],
    *,
    seq: int,
    push_server: str = "",
    wrss: str = "",
    is_first: bool = False,
) -> Proto:
    """A fetch result (im/fetch's answer, a push frame's payload) covering up to `seq`; its
    bytes are `SerializeToString()`."""
    t = now_ms()
    result = wire.ProtoMessageFetchResult(
        messages=messages,
        cursor=f"t-{t}_r-1",
        fetch_interval=1000,
        now=t,
        internal_ext=_internal_ext(room, seq, t),
        fetch_type=1,
        heartbeat_duration=10_000,
        need_ack=True,
        push_server=push_server,
        is_first=is_first,
    )
    if wrss:
        result.route_params["wrss"] = wrss
    return result


def push_frame(result: Proto, seq: int, *, compress: bool) -> bytes:
    """A `msg` frame of the IM WebSocket carrying `result`, gzipped when the client asked."""
    payload = result.SerializeToString()
    frame = wire.WebcastPushFrame(
        seq_id=seq,
        log_id=secrets.randbits(62),
        service=5,
        method=8,
        payload_encoding="pb",
        payload_type="msg",
    )
    frame.headers.add(key="im-cursor", value=result.cursor)
    if compress:
        payload = gzip.compress(payload)
        frame.headers.add(key="compress_type", value="gzip")
    frame.payload = payload
    return frame.SerializeToString()
