"""TikTok's fetch result on the wire: a top-level walk, and the byte-exact `push_server` splice.

The gateway hands a fetch result to the app exactly as TikTok sent it, except for
`push_server` when the fetch was signed with the user's session (webcast/relay.py says why).
Decoding and re-encoding with the proto classes would not give TikTok's bytes back: fields
the classes do not know are dropped, and known ones may be written in another order or form.
So the result is walked at the top level only, and field 10 is replaced in place. The proto
classes remain the fallback for a body the walk cannot splice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from TikTokLive.proto import ProtoMessageFetchResult

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10  # 64 bits, 7 per byte

# ProtoMessageFetchResult's fields that the gateway reads on the wire (all length-delimited).
FETCH_MESSAGES_FIELD = 1
FETCH_CURSOR_FIELD = 2
FETCH_PUSH_SERVER_FIELD = 10


class Field(NamedTuple):
    number: int
    wire_type: int
    start: int  # where the field's key begins
    value_start: int  # for length-delimited fields: after the length prefix
    end: int


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at `data[i:]` and the index after it; ValueError when cut short or too long."""
    shift = value = 0
    while True:
        if i >= len(data) or shift >= 7 * MAX_VARINT_BYTES:
            raise ValueError("truncated or overlong varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if not value:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _field_end(body: bytes, wire_type: int, i: int) -> tuple[int, int]:
    """(value start, end) of a field whose value begins at `i`."""
    if wire_type == LENGTH_DELIMITED:
        length, value_start = read_varint(body, i)
        return value_start, value_start + length
    if wire_type == VARINT:
        return i, read_varint(body, i)[1]
    if wire_type == FIXED64:
        return i, i + 8
    if wire_type == FIXED32:
        return i, i + 4
    raise ValueError(f"unsupported wire type {wire_type}")


def fields(body: bytes) -> list[Field]:
    """The top-level fields in order; ValueError unless the whole body walks cleanly."""
    out: list[Field] = []
    i = 0
    while i < len(body):
        key, value_at = read_varint(body, i)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value_start, end = _field_end(body, wire_type, value_at)
        if end > len(body):
            raise ValueError("field runs past the end")
        out.append(Field(number, wire_type, i, value_start, end))
        i = end
    return out


def length_delimited(field: Field, number: int) -> bool:
    return field.number == number and field.wire_type == LENGTH_DELIMITED


def encode_string_field(number: int, value: str) -> bytes:
    data = value.encode("utf-8")
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(data)) + data


def fetch_result_fields(body: bytes) -> list[Field]:
    """The top-level fields of a ProtoMessageFetchResult, or ValueError ("undecodable
    protobuf", "no cursor") for a body that is not one a client could follow."""
    try:
        top = fields(body)
    except ValueError as exc:
        raise ValueError(f"undecodable protobuf ({exc})") from exc
    framed = (FETCH_MESSAGES_FIELD, FETCH_CURSOR_FIELD)
    if any(f.number in framed and f.wire_type != LENGTH_DELIMITED for f in top):
        raise ValueError("undecodable protobuf (messages or cursor not length-delimited)")
    if not any(length_delimited(f, FETCH_CURSOR_FIELD) and f.end > f.value_start for f in top):
        raise ValueError("no cursor")
    return top


def _splice_push_server(
    body: bytes, make_url: Callable[[str], str], top: list[Field] | None
) -> bytes | None:
    """Replace field 10 on the wire, leaving every other byte as TikTok sent it.

    None when the message holds no (or more than one) push_server or does not walk cleanly;
    the caller then re-encodes with the proto classes.
    """
    try:
        top = fields(body) if top is None else top
    except ValueError:
        return None
    found = [f for f in top if length_delimited(f, FETCH_PUSH_SERVER_FIELD)]
    if len(found) != 1:
        return None
    [field] = found
    url = make_url(body[field.value_start : field.end].decode("utf-8"))
    spliced = encode_string_field(FETCH_PUSH_SERVER_FIELD, url)
    return body[: field.start] + spliced + body[field.end :]


def rewrite_push_server(
    body: bytes, make_url: Callable[[str], str], top: list[Field] | None = None
) -> bytes:
    """The fetch result with `push_server` replaced by `make_url(original)`; `top` is the
    body's top-level walk (`fields`, or `fetch_result_fields`) when the caller has it.

    The one field is spliced on the wire; re-encoding with the proto classes is the fallback
    for a body the splice cannot handle, which then leaves unknown fields out.
    """
    try:
        spliced = _splice_push_server(body, make_url, top)
    except (ValueError, UnicodeDecodeError):
        spliced = None
    if spliced is not None:
        return spliced
    result = ProtoMessageFetchResult().parse(body)
    if not result.push_server:
        return body
    result.push_server = make_url(result.push_server)
    return bytes(result)
