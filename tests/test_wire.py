"""The top-level protobuf walk the fetch path uses agrees with the proto classes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from TikTokLive.proto import ProtoMessageFetchResult, ProtoMessageFetchResultBaseProtoMessage

from livegate.api.wsproxy import rewrite_push_server
from livegate.tiktok import wire

text = st.text(max_size=40)
messages = st.lists(
    st.builds(
        ProtoMessageFetchResultBaseProtoMessage,
        method=st.sampled_from(["WebcastChatMessage", "WebcastGiftMessage", "WebcastRoomUserSeq"]),
        payload=st.binary(max_size=300),
        msg_id=st.integers(min_value=0, max_value=2**63 - 1),
    ),
    max_size=5,
)
results = st.builds(
    ProtoMessageFetchResult,
    messages=messages,
    cursor=text,
    fetch_interval=st.integers(min_value=0, max_value=2**40),
    now=st.integers(min_value=0, max_value=2**62),
    internal_ext=text,
    push_server=text,
    route_params=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
    need_ack=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(results)
def test_the_walk_finds_every_field_the_encoder_wrote(result: ProtoMessageFetchResult) -> None:
    body = bytes(result)
    fields = wire.fields(body)
    assert b"".join(body[f.start : f.end] for f in fields) == body  # contiguous, complete
    cursors = [f for f in fields if wire.length_delimited(f, 2)]
    assert [body[f.value_start : f.end].decode() for f in cursors] == (
        [result.cursor] if result.cursor else []
    )
    assert len([f for f in fields if wire.length_delimited(f, 1)]) == len(result.messages)


@settings(max_examples=200, deadline=None)
@given(results, text)
def test_splicing_push_server_equals_re_encoding(
    result: ProtoMessageFetchResult, new_url: str
) -> None:
    body = bytes(result)
    out = rewrite_push_server(body, lambda _: new_url)
    # The fetch path hands over the walk it already made: the same bytes come out.
    assert rewrite_push_server(body, lambda _: new_url, wire.fields(body)) == out
    if result.push_server:
        result.push_server = new_url
    assert ProtoMessageFetchResult().parse(out) == result


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x05ab",
        b"\x80",
        b"\x00\x01",
        b"\x0b\x01",
        b"\x11\x01\x02",
        b"\x08\x80\x80",
        b"\x08" + b"\xff" * 10 + b"\x01",
    ],
    ids=[
        "short-length",
        "truncated-key",
        "field-0",
        "group",
        "short-fixed64",
        "truncated-varint-value",
        "11-byte-varint-value",
    ],
)
def test_broken_bodies_do_not_walk(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.fields(body)


@settings(max_examples=200, deadline=None)
@given(results, st.frozensets(st.integers(min_value=1, max_value=13), max_size=4))
def test_a_walk_that_keeps_some_numbers_keeps_exactly_those(
    result: ProtoMessageFetchResult, keep: frozenset[int]
) -> None:
    body = bytes(result)
    assert wire.fields(body, keep) == [f for f in wire.fields(body) if f.number in keep]


@pytest.mark.parametrize(
    ("body", "walks"),
    [
        (b"\x0a\x00\x12\x01a", True),  # fields 1 and 2, both length-delimited
        (b"\x08\x01\x12\x01a", False),  # field 1 as a varint
        (b"\x12\x01a\x15\x00\x00\x00\x00", False),  # field 2 as fixed32
        (b"\x18\x01\x12\x01a", True),  # field 3 is not framed: any wire type
    ],
)
def test_framed_numbers_must_be_length_delimited(body: bytes, walks: bool) -> None:
    assert wire.fields(body)  # the plain walk accepts every one of them
    if walks:
        assert wire.fields(body, framed={1, 2}) == wire.fields(body)
    else:
        with pytest.raises(ValueError, match="not length-delimited"):
            wire.fields(body, framed={1, 2})
