"""The simulator's own protobuf schema: the messages and fields it writes (a room's messages, a
fetch result, the push frames) or reads (the client's push frames), with TikTok's field numbers
and wire types, as google.protobuf (upb) classes built once per process.

Written by hand from the protocol (the numbers as TikTokLive's proto classes carry them), never
derived from the gateway's schema: the simulator shares no encoder with the client it checks.
upb, not the proto classes, because those validate every message they encode, which made the
simulator the first limit of the event benchmark (docs/benchmarks.md, "Managed event stream").

Proto3 with implicit presence, as TikTok's messages are: a scalar equal to its default (0, "",
false) is not written, which is what the proto classes did too; a message field is written
when set, even empty. Enums (a member's action, a control message's action) are declared int32:
the same varint on the wire, and the simulator writes their numbers."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

FDP = descriptor_pb2.FieldDescriptorProto
PACKAGE = "livegate_simulator"

# Message name → its fields: (name, number, type). A type is a scalar's name, another message
# of this table, "repeated T", or "map<string,string>".
SCHEMA: dict[str, list[tuple[str, int, str]]] = {
    "ImageModel": [("url_list", 1, "repeated string"), ("uri", 2, "string")],
    "User": [
        ("id", 1, "int64"),
        ("nickname", 3, "string"),
        ("avatar_thumb", 9, "ImageModel"),
        ("display_id", 38, "string"),
        ("sec_uid", 46, "string"),
        ("id_str", 1028, "string"),
    ],
    "Text": [("key", 1, "string"), ("default_pattern", 2, "string")],
    "CommonMessageData": [
        ("method", 1, "string"),
        ("msg_id", 2, "int64"),
        ("room_id", 3, "int64"),
        ("create_time", 4, "int64"),
        ("is_show_msg", 6, "bool"),
        ("display_text", 8, "Text"),
    ],
    "Gift": [
        ("image", 1, "ImageModel"),
        ("describe", 2, "string"),
        ("id", 5, "int64"),
        ("combo", 10, "bool"),
        ("type", 11, "int32"),
        ("diamond_count", 12, "int32"),
        ("name", 16, "string"),
    ],
    "WebcastChatMessage": [
        ("common", 1, "CommonMessageData"),
        ("user", 2, "User"),
        ("content", 3, "string"),
        ("content_language", 14, "string"),
    ],
    "WebcastGiftMessage": [
        ("common", 1, "CommonMessageData"),
        ("gift_id", 2, "int64"),
        ("fan_ticket_count", 3, "int32"),
        ("group_count", 4, "int32"),
        ("repeat_count", 5, "int32"),
        ("combo_count", 6, "int32"),
        ("user", 7, "User"),
        ("repeat_end", 9, "int32"),
        ("group_id", 11, "int64"),
        ("gift", 15, "Gift"),
        ("log_id", 16, "string"),
        ("send_type", 17, "int64"),
    ],
    "WebcastLikeMessage": [
        ("common", 1, "CommonMessageData"),
        ("count", 2, "int32"),
        ("total", 3, "int64"),
        ("user", 5, "User"),
    ],
    "WebcastMemberMessage": [
        ("common", 1, "CommonMessageData"),
        ("user", 2, "User"),
        ("member_count", 3, "int32"),
        ("action", 10, "int32"),  # MemberMessageAction: 1 JOINED
        ("user_id", 12, "int64"),
    ],
    "WebcastSocialMessage": [
        ("common", 1, "CommonMessageData"),
        ("user", 2, "User"),
        ("share_type", 3, "int64"),
        ("action", 4, "int64"),
        ("follow_count", 6, "int64"),
        ("share_count", 8, "int32"),
    ],
    "Contributor": [("score", 1, "int64"), ("user", 2, "User"), ("rank", 3, "int64")],
    "WebcastRoomUserSeqMessage": [
        ("common", 1, "CommonMessageData"),
        ("ranks", 2, "repeated Contributor"),
        ("total", 3, "int64"),
        ("pop_str", 4, "string"),
        ("popularity", 6, "int64"),
        ("total_user", 7, "int64"),
    ],
    "WebcastControlMessage": [
        ("common", 1, "CommonMessageData"),
        ("action", 2, "int32"),  # ControlAction: 3 STREAM_ENDED
    ],
    "BaseProtoMessage": [
        ("method", 1, "string"),
        ("payload", 2, "bytes"),
        ("msg_id", 3, "int64"),
        ("offset", 5, "int64"),
    ],
    "ProtoMessageFetchResult": [
        ("messages", 1, "repeated BaseProtoMessage"),
        ("cursor", 2, "string"),
        ("fetch_interval", 3, "int64"),
        ("now", 4, "int64"),
        ("internal_ext", 5, "string"),
        ("fetch_type", 6, "int32"),
        ("route_params", 7, "map<string,string>"),
        ("heartbeat_duration", 8, "int64"),
        ("need_ack", 9, "bool"),
        ("push_server", 10, "string"),
        ("is_first", 11, "bool"),
    ],
    "PushHeader": [("key", 1, "string"), ("value", 2, "string")],
    "WebcastPushFrame": [
        ("seq_id", 1, "int64"),
        ("log_id", 2, "int64"),
        ("service", 3, "int64"),
        ("method", 4, "int64"),
        ("headers", 5, "repeated PushHeader"),
        ("payload_encoding", 6, "string"),
        ("payload_type", 7, "string"),
        ("payload", 8, "bytes"),
    ],
    # What the client sends in its frames: a heartbeat ("hb") and the room it enters.
    "HeartBeatMessage": [("send_packet_seq_id", 2, "int64")],
    "WebcastImEnterRoomMessage": [("room_id", 1, "int64"), ("identity", 5, "string")],
}

_SCALARS = {
    "bool": FDP.TYPE_BOOL,
    "int32": FDP.TYPE_INT32,
    "int64": FDP.TYPE_INT64,
    "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES,
}


def _field(
    owner: descriptor_pb2.DescriptorProto, name: str, number: int, kind: str
) -> descriptor_pb2.FieldDescriptorProto:
    repeated = kind.startswith("repeated ")
    kind = kind.removeprefix("repeated ")
    f = owner.field.add(name=name, number=number)
    f.label = FDP.LABEL_REPEATED if repeated else FDP.LABEL_OPTIONAL
    if kind in _SCALARS:
        f.type = _SCALARS[kind]
    else:
        f.type, f.type_name = FDP.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
    return f


def _map(owner: descriptor_pb2.DescriptorProto, name: str, number: int) -> None:
    """A map<string,string>: on the wire, a repeated entry message (key 1, value 2)."""
    entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
    entry = owner.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, "string")
    _field(entry, "value", 2, "string")
    f = _field(owner, name, number, "repeated " + entry_name)
    f.type_name = f".{PACKAGE}.{owner.name}.{entry_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="livegate_simulator.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in SCHEMA.items():
        msg = fd.message_type.add(name=name)
        for field_name, number, kind in fields:
            if kind == "map<string,string>":
                _map(msg, field_name, number)
            else:
                _field(msg, field_name, number, kind)
    return fd


def _classes() -> dict[str, type[Message]]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in SCHEMA
    }


_CLASSES = _classes()

ImageModel = _CLASSES["ImageModel"]
User = _CLASSES["User"]
Text = _CLASSES["Text"]
CommonMessageData = _CLASSES["CommonMessageData"]
Gift = _CLASSES["Gift"]
WebcastChatMessage = _CLASSES["WebcastChatMessage"]
WebcastGiftMessage = _CLASSES["WebcastGiftMessage"]
WebcastLikeMessage = _CLASSES["WebcastLikeMessage"]
WebcastMemberMessage = _CLASSES["WebcastMemberMessage"]
WebcastSocialMessage = _CLASSES["WebcastSocialMessage"]
Contributor = _CLASSES["Contributor"]
WebcastRoomUserSeqMessage = _CLASSES["WebcastRoomUserSeqMessage"]
WebcastControlMessage = _CLASSES["WebcastControlMessage"]
BaseProtoMessage = _CLASSES["BaseProtoMessage"]
ProtoMessageFetchResult = _CLASSES["ProtoMessageFetchResult"]
PushHeader = _CLASSES["PushHeader"]
WebcastPushFrame = _CLASSES["WebcastPushFrame"]
HeartBeatMessage = _CLASSES["HeartBeatMessage"]
WebcastImEnterRoomMessage = _CLASSES["WebcastImEnterRoomMessage"]
