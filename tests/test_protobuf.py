"""The top-level protobuf walk and the push_server splice (tiktok/protobuf.py) agree with the
proto classes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from TikTokLive.proto import ProtoMessageFetchResult, ProtoMessageFetchResultBaseProtoMessage

from livegate.tiktok import protobuf
from livegate.tiktok.protobuf import rewrite_push_server

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
    fields = protobuf.fields(body)
    assert b"".join(body[f.start : f.end] for f in fields) == body  # contiguous, complete
    cursors = [f for f in fields if protobuf.length_delimited(f, 2)]
    assert [body[f.value_start : f.end].decode() for f in cursors] == (
        [result.cursor] if result.cursor else []
    )
    assert len([f for f in fields if protobuf.length_delimited(f, 1)]) == len(result.messages)


@settings(max_examples=200, deadline=None)
@given(results, text)
def test_splicing_push_server_equals_re_encoding(
    result: ProtoMessageFetchResult, new_url: str
) -> None:
    body = bytes(result)
    out = rewrite_push_server(body, lambda _: new_url)
    # The fetch path hands over the walk it already made: the same bytes come out.
    assert rewrite_push_server(body, lambda _: new_url, protobuf.fields(body)) == out
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
        protobuf.fields(body)


@settings(max_examples=200, deadline=None)
@given(results)
def test_a_fetch_result_with_a_cursor_is_accepted(result: ProtoMessageFetchResult) -> None:
    body = bytes(result)
    if result.cursor:
        assert protobuf.fetch_result_fields(body) == protobuf.fields(body)
    else:
        with pytest.raises(ValueError, match="no cursor"):
            protobuf.fetch_result_fields(body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\x0a\x00\x12\x01a", None),  # fields 1 and 2, both length-delimited
        (b"\x18\x01\x12\x01a", None),  # field 3 may have any wire type
        (b"\x08\x01\x12\x01a", "not length-delimited"),  # messages as a varint
        (b"\x12\x01a\x15\x00\x00\x00\x00", "not length-delimited"),  # cursor as fixed32
        (b"\x0a\x00", "no cursor"),
        (b"\x0a\x05ab", "undecodable protobuf"),
    ],
)
def test_messages_and_cursor_must_be_length_delimited(body: bytes, problem: str | None) -> None:
    if problem is None:
        assert protobuf.fetch_result_fields(body) == protobuf.fields(body)
    else:
        with pytest.raises(ValueError, match=problem):
            protobuf.fetch_result_fields(body)
