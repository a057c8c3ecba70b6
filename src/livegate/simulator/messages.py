"""The protobuf the simulator sends, built with TikTokLive's proto classes: the room's
messages (chat, gift, like, member, social, room-user-seq, control), a fetch result and the
push frames of the IM WebSocket. It shares no encoder with the gateway it checks.

The fields set are the ones TikTok sends and the client libraries read: TikTokLive 7.0.1
(`GiftEvent.streaking` reads `gift.type == 1` and `repeat_end`; Follow/ShareEvent read
`common.display_text.key`) and the Euler SDK's decoder, which uses the same wire numbers."""

from __future__ import annotations

import gzip
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from TikTokLive.proto import (
    BaseProtoMessage,
    CommonMessageData,
    Contributor,
    Gift,
    ImageModel,
    MemberMessageAction,
    ProtoMessageFetchResult,
    PushHeader,
    User,
    WebcastChatMessage,
    WebcastControlMessage,
    WebcastGiftMessage,
    WebcastLikeMessage,
    WebcastMemberMessage,
    WebcastPushFrame,
    WebcastRoomUserSeqMessage,
    WebcastSocialMessage,
)
from TikTokLiveProto.v3.webcast.im import ControlAction
from TikTokLiveProto.v3.webcast.model.message.common import Text

from livegate.simulator.rooms import Comment, Message, Room, now_ms
from livegate.simulator.state import Account


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


def user_of(acc: Account) -> User:
    return _user(acc.uid, acc.nickname, acc.unique_id, acc.sec_uid, avatar=True)


def _user(uid: str, nickname: str, unique_id: str, sec_uid: str, *, avatar: bool) -> User:
    image = f"https://p16-sign.tiktokcdn.com/avatar/{uid}~100x100.webp"
    return User(
        id=int(uid),
        id_str=uid,
        nickname=nickname,
        display_id=unique_id,
        sec_uid=sec_uid,
        avatar_thumb=ImageModel(url_list=[image], uri=f"avatar/{uid}") if avatar else None,
    )


# A message is encoded as its own fields followed by a part made once per sender (its `user`)
# or gift (its `gift`): protobuf reads fields in any order, and encodings of one message type
# that share no field concatenate into the message holding the fields of both (the
# specification's merge). The proto classes spend most of a message's encoding validating
# nested messages (docs/benchmarks.md, "Managed event stream"); the parts that never change
# are validated and encoded once.
@lru_cache(maxsize=4096)
def _user_part(
    method: str, uid: str, nickname: str, unique_id: str, sec_uid: str, avatar: bool
) -> bytes:
    cls: Any = _WITH_USER[method]
    return bytes(cls(user=_user(uid, nickname, unique_id, sec_uid, avatar=avatar)))


def _sender(cls: type[Any], acc: Account) -> bytes:
    return _user_part(cls.__name__, acc.uid, acc.nickname, acc.unique_id, acc.sec_uid, True)


_WITH_USER = {
    cls.__name__: cls
    for cls in (
        WebcastChatMessage,
        WebcastGiftMessage,
        WebcastLikeMessage,
        WebcastMemberMessage,
        WebcastSocialMessage,
    )
}


@lru_cache(maxsize=64)
def _gift_part(spec: GiftSpec) -> bytes:
    image = f"https://p19-webcast.tiktokcdn.com/img/gift/{spec.id}.png~tplv-obj.png"
    gift = Gift(
        id=spec.id,
        name=spec.name,
        describe=f"sent {spec.name}",
        type=1 if spec.streakable else 2,
        diamond_count=spec.diamonds,
        combo=spec.streakable,
        image=ImageModel(url_list=[image], uri=f"webcast-va/{spec.id}"),
    )
    return bytes(WebcastGiftMessage(gift=gift))


def _common(
    method: str, room: Room, msg_id: int, created_ms: int, key: str = "", pattern: str = ""
) -> CommonMessageData:
    return CommonMessageData(
        method=method,
        msg_id=msg_id,
        room_id=int(room.room_id),
        create_time=created_ms,
        is_show_msg=True,
        display_text=Text(key=key, default_pattern=pattern) if key else None,
    )


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
    head = bytes(
        WebcastGiftMessage(
            common=_common(
                "WebcastGiftMessage",
                room,
                msg_id,
                created_ms,
                "webcast_gift_send_message",
                "{0:user} sent {1:gift} {2:string}",
            ),
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
    )
    return head + _sender(WebcastGiftMessage, sender) + _gift_part(spec)


def like_message(
    room: Room, msg_id: int, created_ms: int, sender: Account, count: int, total: int
) -> bytes:
    head = _common(
        "WebcastLikeMessage",
        room,
        msg_id,
        created_ms,
        "pm_mt_msg_viewer",
        "{0:user} liked the LIVE",
    )
    own = bytes(WebcastLikeMessage(common=head, count=count, total=total))
    return own + _sender(WebcastLikeMessage, sender)


def member_message(
    room: Room, msg_id: int, created_ms: int, sender: Account, member_count: int
) -> bytes:
    head = _common(
        "WebcastMemberMessage", room, msg_id, created_ms, "live_room_enter_toast", "{0:user} joined"
    )
    own = WebcastMemberMessage(
        common=head,
        member_count=member_count,
        action=MemberMessageAction.JOINED,
        user_id=int(sender.uid),
    )
    return bytes(own) + _sender(WebcastMemberMessage, sender)


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
    own = WebcastSocialMessage(
        common=_common("WebcastSocialMessage", room, msg_id, created_ms, key, pattern),
        action=1 if follow else 3,
        share_type=0 if follow else 1,
        follow_count=count if follow else 0,
        share_count=0 if follow else count,
    )
    return bytes(own) + _sender(WebcastSocialMessage, sender)


def room_user_seq_message(
    room: Room, msg_id: int, created_ms: int, total: int, top: list[tuple[Account, int]]
) -> bytes:
    """The viewer count, with the top gifters as TikTok ranks them."""
    ranks = [
        Contributor(score=score, user=user_of(acc), rank=i + 1)
        for i, (acc, score) in enumerate(top)
    ]
    return bytes(
        WebcastRoomUserSeqMessage(
            common=_common("WebcastRoomUserSeqMessage", room, msg_id, created_ms),
            ranks=ranks,
            total=total,
            pop_str=str(total),
            popularity=total,
            total_user=total,
        )
    )


def base_message(room: Room, message: Message) -> BaseProtoMessage:
    """A message of the room's log as a fetch result or push frame carries it."""
    if isinstance(message, Comment):
        return chat_message(room, message)
    return BaseProtoMessage(
        method=message.method, payload=message.payload, msg_id=message.msg_id, offset=message.seq
    )


def chat_message(room: Room, c: Comment) -> BaseProtoMessage:
    if not c.payload:
        own = WebcastChatMessage(
            common=CommonMessageData(
                method="WebcastChatMessage",
                msg_id=c.msg_id,
                room_id=int(room.room_id),
                create_time=c.created_ms,
            ),
            content=c.content,
            content_language="en",
        )
        sender = ("WebcastChatMessage", c.uid, c.nickname, c.unique_id, c.sec_uid, False)
        c.payload = bytes(own) + _user_part(*sender)
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


def _build_validators() -> None:
    """pydantic builds a proto class's validator on its first use and resolves its forward
    references in the caller's namespace, where a local variable can shadow a proto module
    (a local `common` breaks WebcastLikeMessage). Built here, with no such locals."""
    for cls in (*_WITH_USER.values(), WebcastRoomUserSeqMessage, WebcastControlMessage):
        cls()


_build_validators()
