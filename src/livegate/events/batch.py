"""One delivery of a room's events to its subscribers, encoded once for all of them: as a
`WebcastPushFrame` (what the SDK's `deserializeWebSocketMessage` decodes), or as decoded events
`{type, data}` with the proto classes' field names: what their `to_dict(casing=SNAKE)` gives,
decoded by upb with a schema built from them (tiktok/schema.py)."""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import betterproto2
import TikTokLive.proto as proto

from livegate.tiktok import frames
from livegate.tiktok.frames import PushMessage
from livegate.tiktok.schema import Schema


def _proto_classes() -> dict[str, type[betterproto2.Message]]:
    """TikTok's event messages by the name a BaseProtoMessage's `method` gives them."""
    found: dict[str, type[betterproto2.Message]] = {}
    for name in dir(proto):
        cls = getattr(proto, name)
        is_message = isinstance(cls, type) and issubclass(cls, betterproto2.Message)
        if name.startswith("Webcast") and is_message:
            found[name] = cls
    return found


PROTO_CLASSES = _proto_classes()
SCHEMA = Schema(PROTO_CLASSES.values())


def decode(message: PushMessage) -> dict[str, Any] | None:
    """`{type, data}` for a message whose type the proto classes know; None otherwise (the
    SDK skips those too)."""
    cls = PROTO_CLASSES.get(message.method)
    if cls is None:
        return None
    try:
        data = SCHEMA.to_dict(cls, message.payload)
    except Exception:  # upb's DecodeError, or a payload betterproto2 could not print either
        return None
    return {"type": message.method, "data": data}


# Events decoded lately in this process, by (method, payload): every upstream of a room (one per
# credential: with users' tokens, one per user) brings the same messages within moments of each
# other, and decoding is still the costliest step per message of a JSON stream
# (docs/benchmarks.md, "Managed event stream").
DECODED_KEPT = 512
_decoded: OrderedDict[tuple[str, bytes], dict[str, Any] | None] = OrderedDict()


def decode_once(message: PushMessage) -> dict[str, Any] | None:
    """`decode(message)`, shared with every other batch of this process that carries the same
    message (same method and bytes); the result is shared, so it is never changed."""
    key = (message.method, message.payload)
    if key in _decoded:
        return _decoded[key]
    event = _decoded[key] = decode(message)
    if len(_decoded) > DECODED_KEPT:
        _decoded.popitem(last=False)
    return event


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class EventBatch:
    seq: int  # the upstream's number of the first message (they count up by one)
    messages: list[PushMessage]
    cursor: str
    internal_ext: str
    # TikTok's own encoding of a fetch result holding exactly these messages, when there is one
    # (a push frame's): the binary frame carries it instead of encoding them again.
    result: bytes | None = None
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _frame: bytes | None = field(default=None, repr=False)
    _events: list[dict[str, Any]] | None = field(default=None, repr=False)
    _texts: dict[bool, list[str]] = field(default_factory=dict, repr=False)

    def push_frame(self) -> bytes:
        """A `msg` push frame carrying these messages, uncompressed."""
        if self._frame is None:
            result = self.result
            if result is None:
                result = frames.fetch_result(
                    self.messages, self.cursor, self.internal_ext, self.at_ms
                )
            self._frame = frames.msg_frame(self.seq, secrets.randbits(62), result)
        return self._frame

    def events(self) -> list[dict[str, Any]]:
        if self._events is None:
            self._events = [e for m in self.messages if (e := decode_once(m)) is not None]
        return self._events

    def texts(self, bundle: bool) -> list[str]:
        """The JSON text frames: one `{timestamp, messages}` bundle, or one per event."""
        cached = self._texts.get(bundle)
        if cached is None:
            events = self.events()
            if not events:
                cached = []
            elif bundle:
                cached = [dumps({"timestamp": self.at_ms, "messages": events})]
            else:
                cached = [dumps(e) for e in events]
            self._texts[bundle] = cached
        return cached
