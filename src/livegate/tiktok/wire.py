"""Protobuf wire format, top level only: walk a message's fields without decoding them.

The fetch path checks and edits `ProtoMessageFetchResult` on every poll. Decoding it with the
proto classes cost about 100 µs per poll even for a small result; walking the top-level
fields costs a few microseconds and leaves every byte TikTok sent as it was.
"""

from __future__ import annotations

from collections.abc import Container
from typing import NamedTuple

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10  # 64 bits, 7 per byte
_new_tuple = tuple.__new__


class Field(NamedTuple):
    number: int
    wire_type: int
    start: int  # where the field's key begins
    value_start: int  # for length-delimited fields: after the length prefix
    end: int


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
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
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(
    body: bytes, keep: Container[int] | None = None, framed: Container[int] = ()
) -> list[Field]:
    """The top-level fields in order, or only those numbered in `keep`; ValueError unless
    the whole body walks cleanly and every field numbered in `framed` is length-delimited.

    Runs on every poll, so each Field is made with `tuple.__new__` (the NamedTuple's own
    `__new__` is a Python function: a frame per field) and a varint value is skipped over,
    not decoded: together a 2.4x faster walk of a fetch result. `keep` and `framed` spare
    the caller a loop of its own over every field (a fetch result holds one per message).
    """
    out: list[Field] = []
    append = out.append
    i, n = 0, len(body)
    while i < n:
        start = i
        key = body[i]
        if key < 0x80:  # one-byte keys: every field number up to 15
            i += 1
        else:
            key, i = read_varint(body, i)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value_start = i
        if wire_type != LENGTH_DELIMITED and number in framed:
            raise ValueError(f"field {number} is not length-delimited")
        if wire_type == LENGTH_DELIMITED:
            if i < n and body[i] < 0x80:
                length, value_start = body[i], i + 1
            elif i + 1 < n and body[i + 1] < 0x80:  # two-byte lengths (to 16 KiB): messages
                length, value_start = (body[i] & 0x7F) | body[i + 1] << 7, i + 2
            else:
                length, value_start = read_varint(body, i)
            i = value_start + length
        elif wire_type == VARINT:
            while i < n and body[i] & 0x80:
                i += 1
            i += 1  # past the last byte; past the end if the varint is cut short
            if i - value_start > MAX_VARINT_BYTES:
                raise ValueError("varint too long")
        elif wire_type == FIXED64:
            i += 8
        elif wire_type == FIXED32:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if i > n:
            raise ValueError("field runs past the end")
        if keep is None or number in keep:
            append(_new_tuple(Field, (number, wire_type, start, value_start, i)))
    return out


def length_delimited(field: Field, number: int) -> bool:
    return field.number == number and field.wire_type == LENGTH_DELIMITED


def encode_bytes_field(number: int, data: bytes) -> bytes:
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(data)) + data


def encode_string_field(number: int, value: str) -> bytes:
    return encode_bytes_field(number, value.encode("utf-8"))
