"""tiktok/schema.py: the upb decode gives, for every message, exactly the dict (and JSON text)
betterproto2's `to_dict(casing=SNAKE)` gave: the simulator's messages, messages of every kind
TikTokLive knows with every field set, and the wire's corner cases (float bits, -0.0, map
order and duplicate keys, unknown fields and enum values, packed and unpacked lists)."""

from __future__ import annotations

import dataclasses
import math
import random
import struct
from typing import Any

import betterproto2
import pytest
from TikTokLive.proto import BaseProtoMessage

from livegate.events.batch import PROTO_CLASSES, decode, dumps
from livegate.simulator import messages
from livegate.simulator.rooms import Comment, Room
from livegate.simulator.state import Account
from livegate.tiktok.schema import classes_by_field


def _build_validators() -> None:
    """pydantic builds a proto class's validator on its first use, resolving its forward
    references in the caller's frame, where betterproto2's `parse(data)` shadows TikTokLiveProto's
    module `data`: a class first met inside `parse` fails there, each time (the simulator's
    messages.py works around it for its own). Built here, so that the reference below prints
    what betterproto2 means to print."""
    pending, done = list(PROTO_CLASSES.values()), set()
    while pending:
        cls = pending.pop()
        if cls not in done and issubclass(cls, betterproto2.Message):
            done.add(cls)
            cls()
            pending += classes_by_field(cls).values()


_build_validators()


def reference(message: BaseProtoMessage) -> dict[str, Any] | None:
    """The decode tiktok/schema.py replaced: the proto classes' own parser and to_dict."""
    cls = PROTO_CLASSES.get(message.method)
    if cls is None:
        return None
    try:
        data = cls().parse(message.payload).to_dict(casing=betterproto2.Casing.SNAKE)
    except Exception:
        return None
    return {"type": message.method, "data": data}


def assert_same(message: BaseProtoMessage) -> dict[str, Any] | None:
    got, want = decode(message), reference(message)
    assert got == want
    if want is not None:  # the same keys in the same order, the same types (int keys...)
        assert dumps(got) == dumps(want)
        assert repr(got) == repr(want)
    return got


# --- the simulator's messages ---------------------------------------------------------------

ROOM = Room(room_id="7312345678901234567", owner_uid="6800000000000000001", title="t")
ALICE = Account(uid="6800000000000000002", unique_id="alice", nickname="Alice ☀", sec_uid="MS4x")
BOB = Account(uid="6800000000000000003", unique_id="bob", nickname="Bob", sec_uid="MS4y")


def simulator_messages() -> list[BaseProtoMessage]:
    t = 1_733_000_000_000
    # The simulator's own (upb) BaseProtoMessage, read back as the gateway receives it.
    out = [
        BaseProtoMessage().parse(m.SerializeToString())
        for m in (
            messages.chat_message(
                ROOM, Comment(1, 9001, ALICE.uid, "alice", "Alice ☀", "MS4x", 'hi 👋 "x"', t)
            ),
            messages.end_message(ROOM, 9002),
        )
    ]
    built: list[tuple[str, bytes]] = []
    for spec in messages.GIFTS:
        for count, end in ((1, False), (5, False), (5, True)):
            payload = messages.gift_message(
                ROOM, 9100 + count, t, BOB, spec, group_id=77, repeat_count=count, repeat_end=end
            )
            built.append(("WebcastGiftMessage", payload))
    built += [
        ("WebcastLikeMessage", messages.like_message(ROOM, 9201, t, ALICE, 15, 1200)),
        ("WebcastMemberMessage", messages.member_message(ROOM, 9202, t, BOB, 33)),
        ("WebcastSocialMessage", messages.social_message(ROOM, 9203, t, ALICE, "follow", 4)),
        ("WebcastSocialMessage", messages.social_message(ROOM, 9204, t, BOB, "share", 2)),
        (
            "WebcastRoomUserSeqMessage",
            messages.room_user_seq_message(ROOM, 9205, t, 512, [(ALICE, 3000), (BOB, 10)]),
        ),
        ("WebcastRoomUserSeqMessage", messages.room_user_seq_message(ROOM, 9206, t, 0, [])),
    ]
    out += [BaseProtoMessage(method=m, payload=p, msg_id=1) for m, p in built]
    return out


@pytest.mark.parametrize("message", simulator_messages(), ids=lambda m: m.method)
def test_the_simulators_messages_decode_as_betterproto2_decoded_them(
    message: BaseProtoMessage,
) -> None:
    event = assert_same(message)
    assert event is not None and event["data"]["common"]["method"] == message.method


# --- every kind of message, every field set -------------------------------------------------


def filled(cls: type[betterproto2.Message], rng: random.Random, depth: int) -> Any:
    """An instance of `cls` with every field set (nested messages to `depth`)."""
    kinds = classes_by_field(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta = betterproto2.FieldMetadata.get(field)
        if meta.proto_type == betterproto2.TYPE_MAP:
            assert meta.map_meta is not None
            key, value = meta.map_meta
            target = kinds.get(f"{field.name}.value")
            if value.proto_type == betterproto2.TYPE_MESSAGE and depth <= 0:
                continue
            values[field.name] = {
                scalar(key.proto_type, None, rng): one(value.proto_type, target, rng, depth)
                for _ in range(rng.randint(1, 4))
            }
            continue
        if meta.proto_type == betterproto2.TYPE_MESSAGE and depth <= 0:
            continue
        target = kinds.get(field.name)
        if meta.repeated:
            values[field.name] = [
                one(meta.proto_type, target, rng, depth) for _ in range(rng.randint(1, 3))
            ]
        else:
            values[field.name] = one(meta.proto_type, target, rng, depth)
    return cls(**values)


def one(proto_type: str, target: Any, rng: random.Random, depth: int) -> Any:
    if proto_type == betterproto2.TYPE_MESSAGE:
        if rng.random() < 0.15:
            return target()  # present but empty: printed as {}
        return filled(target, rng, depth - 1)
    return scalar(proto_type, target, rng)


def scalar(proto_type: str, target: Any, rng: random.Random) -> Any:
    if proto_type == betterproto2.TYPE_ENUM:
        known = [m.value for m in target]
        return target(rng.choice([*known, max(known) + 1000]))  # unknown values too
    if proto_type == betterproto2.TYPE_BOOL:
        return rng.random() < 0.7
    if proto_type in ("int32", "sint32", "sfixed32"):
        return rng.choice([0, 1, -1, 7, 2**31 - 1, -(2**31), rng.randint(-(2**31), 2**31 - 1)])
    if proto_type in ("uint32", "fixed32"):
        return rng.choice([0, 1, 2**32 - 1, rng.randint(0, 2**32 - 1)])
    if proto_type in ("int64", "sint64", "sfixed64"):
        return rng.choice(
            [0, -1, 2**63 - 1, -(2**63), 7312345678901234567, rng.randint(-(2**63), 2**63 - 1)]
        )
    if proto_type in ("uint64", "fixed64"):
        return rng.choice([0, 2**64 - 1, rng.randint(0, 2**64 - 1)])
    if proto_type in ("float", "double"):
        return rng.choice([0.0, 0.1, -2.5, 1e30, 3.4028234663852886e38, math.inf, -math.inf])
    if proto_type == betterproto2.TYPE_STRING:
        return rng.choice(["", "a", "Ünïcode ☀ 👋", "x" * 40, '"quoted"\n', str(rng.random())])
    if proto_type == betterproto2.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 9))
    raise AssertionError(proto_type)


@pytest.mark.parametrize("method", sorted(PROTO_CLASSES))
def test_every_kind_with_every_field_set_decodes_as_betterproto2_decoded_it(method: str) -> None:
    cls = PROTO_CLASSES[method]
    for seed in range(3):
        rng = random.Random(f"{method}/{seed}")
        payload = bytes(filled(cls, rng, depth=3 if seed else 1))
        assert_same(BaseProtoMessage(method=method, payload=payload))


# --- the wire's corner cases, encoded by hand -----------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vi(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def ld(number: int, body: bytes) -> bytes:
    return key(number, 2) + varint(len(body)) + body


def f32(number: int, bits: int) -> bytes:
    return key(number, 5) + struct.pack("<I", bits)


def f64(number: int, bits: int) -> bytes:
    return key(number, 1) + struct.pack("<Q", bits)


def bits32(value: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


def bits64(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


CHAT, GIFT, MEMBER = "WebcastChatMessage", "WebcastGiftMessage", "WebcastMemberMessage"
FLOATS = [0.1, -0.0, 0.0, 1e-45, 3.4e38, math.inf, -math.inf, math.nan, -2.5]
DOUBLES = [0.1, -0.0, 5e-324, 1.7976931348623157e308, math.inf, math.nan, -1e-300]


CASES: list[tuple[str, str, bytes]] = [
    # chat.comment_label_scores[].score is a float: the double its bits stand for, -0.0 left out
    *((f"float {v!r}", CHAT, ld(26, ld(1, b"toxic") + f32(2, bits32(v)))) for v in FLOATS),
    # capsule.biz_params.cohost.invitee_model_prediction_data.model_prediction_data:
    # map<string, double>, -0.0 and 0 kept as map values
    (
        "map of doubles",
        "WebcastCapsuleMessage",
        ld(
            8,
            ld(
                1,
                ld(
                    5,
                    b"".join(
                        ld(2, ld(1, b"k%d" % i) + f64(2, bits64(v))) for i, v in enumerate(DOUBLES)
                    )
                    + ld(2, ld(1, b"none")),
                ),
            ),
        ),
    ),
    # barrage.user.ecommerce_entrance.showcase_entrance_info.creator_score_profile.final_score
    *(
        (
            f"double {v!r}",
            "WebcastBarrageMessage",
            ld(50, ld(1047, ld(5, ld(12, f64(1, bits64(v)))))),
        )
        for v in DOUBLES
    ),
    # gift.gift.biz_extra: map<int64, string> in the entries' order, a repeated key keeps its
    # first place and takes the last value, an entry without key or value gets the zeros
    (
        "map order",
        GIFT,
        ld(
            15,
            b"".join(
                ld(123, e)
                for e in [
                    vi(1, 9) + ld(2, b"x"),
                    vi(1, 1) + ld(2, b"y"),
                    vi(1, 9) + ld(2, b"z"),
                    b"",
                    vi(1, 2**64 - 1),
                    ld(2, b"w"),
                ]
            ),
        ),
    ),
    # chat.user.user_attr.admin_permissions: map<int32, int32> (int keys in to_dict)
    (
        "int32 map",
        CHAT,
        ld(
            2,
            ld(
                32,
                b"".join(
                    ld(5, vi(1, k) + vi(2, v)) for k, v in [(5, 1), (-3, 2), (700, 0), (5, 9)]
                ),
            ),
        ),
    ),
    # chat.user.fans_club.prefer_data: map<int32, message>, values printed (and empty: {})
    (
        "message map",
        CHAT,
        ld(
            2, ld(24, ld(2, vi(1, 4) + ld(2, b"")) + ld(2, vi(1, 1) + ld(2, ld(1, ld(1, b"club")))))
        ),
    ),
    # a map entry with no message value: betterproto2 cannot print it, the event is dropped
    ("message map without value", CHAT, ld(2, ld(24, ld(2, vi(1, 5))))),
    # chat.mention_user_list: repeated int64, packed and not; chat.comment_tag: repeated enum
    ("packed", CHAT, ld(27, varint(1) + varint(2**63) + varint(5))),
    ("unpacked", CHAT, vi(27, 1) + vi(27, 2**64 - 1) + ld(27, varint(3)) + vi(20, 1) + vi(20, 999)),
    # unknown fields of every wire type are skipped, at the top and nested
    (
        "unknown fields",
        CHAT,
        vi(999, 1)
        + ld(2, f64(4000, 7) + ld(3, b"nick") + f32(4001, 1))
        + ld(998, b"\x01\x02")
        + ld(3, b"hi"),
    ),
    # enums: known (by proto name), unknown (by number), zero (left out), negative
    ("member action known", MEMBER, vi(10, 3)),
    ("member action unknown", MEMBER, vi(10, 77)),
    ("member action zero", MEMBER, vi(10, 0)),
    ("member action negative", MEMBER, vi(10, -2)),
    # scalars: the last of a repeated scalar wins, bool from any non-zero varint, int32 from a
    # 64-bit varint, a set-to-zero scalar left out, bytes as base64
    (
        "scalars",
        CHAT,
        ld(3, b"a")
        + ld(3, b"b")
        + vi(4, 2)
        + vi(11, -5)
        + vi(16, 2**40 + 3)
        + vi(17, 0)
        + vi(22, -1),
    ),
    ("empty", CHAT, b""),
    ("a method the proto classes do not know", "WebcastNoSuchMessage", ld(3, b"hi")),
]


@pytest.mark.parametrize(("method", "payload"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wire_corner_cases_decode_as_betterproto2_decoded_them(method: str, payload: bytes) -> None:
    message = BaseProtoMessage(method=method, payload=payload)
    got, want = decode(message), reference(message)
    assert repr(got) == repr(want)  # NaN != NaN, but prints as 'NaN' in both
    if want is not None:
        assert dumps(got) == dumps(want)


MALFORMED = {
    "truncated string": ld(3, b"hello")[:-2],
    "truncated varint": b"\x18\xff",
    "length past the end": key(3, 2) + varint(50) + b"abc",
    "nested message truncated": ld(2, ld(3, b"nickname")[:-3]),
    "invalid utf-8": ld(3, b"\xff\xfe"),
    "wire type 7": key(3, 7) + b"\x00",
    "field number 0": b"\x00\x00",
    "random bytes": bytes(range(255, 0, -7)),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_payload_upb_cannot_parse_decodes_to_none(payload: bytes) -> None:
    assert decode(BaseProtoMessage(method=CHAT, payload=payload)) is None


# Payloads no encoder of the schema writes, where upb follows protobuf's rules and betterproto2
# did not (tiktok/schema.py's docstring): the new decode's answer, pinned.
SPEC_READINGS: dict[str, tuple[bytes, dict[str, Any]]] = {
    "a message field twice is merged": (
        ld(2, vi(1, 5)) + ld(2, ld(3, b"nick")),
        {"user": {"id": "5", "nickname": "nick"}},
    ),
    "a wire type the schema does not have is skipped": (vi(3, 5) + vi(2, 1), {}),
    "a group is skipped": (key(999, 3) + vi(1, 1) + key(999, 4) + ld(3, b"hi"), {"content": "hi"}),
}


@pytest.mark.parametrize(("payload", "data"), SPEC_READINGS.values(), ids=SPEC_READINGS.keys())
def test_payloads_no_encoder_writes_are_read_as_protobuf_says(
    payload: bytes, data: dict[str, Any]
) -> None:
    assert decode(BaseProtoMessage(method=CHAT, payload=payload)) == {"type": CHAT, "data": data}
