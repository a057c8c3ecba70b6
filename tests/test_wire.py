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
    out = ProtoMessageFetchResult().parse(rewrite_push_server(bytes(result), lambda _: new_url))
    if result.push_server:
        result.push_server = new_url
    assert out == result


@pytest.mark.parametrize(
    "body",
    [b"\x0a\x05ab", b"\x80", b"\x00\x01", b"\x0b\x01", b"\x11\x01\x02"],
    ids=["short-length", "truncated-varint", "field-0", "group", "short-fixed64"],
)
def test_broken_bodies_do_not_walk(body: bytes) -> None:
    with pytest.raises(ValueError):
        wire.fields(body)
