"""events/batch.py: a message that several upstreams bring (one per credential) is decoded for
JSON once per process, and every batch gets the same event."""

from __future__ import annotations

from TikTokLive.proto import BaseProtoMessage, CommonMessageData, User, WebcastChatMessage

from livegate.events.batch import EventBatch, decode


def _chat(msg_id: int, text: str) -> BaseProtoMessage:
    payload = WebcastChatMessage(
        common=CommonMessageData(method="WebcastChatMessage", msg_id=msg_id, create_time=1),
        user=User(id=7, nickname="ava"),
        content=text,
    )
    return BaseProtoMessage(method="WebcastChatMessage", payload=bytes(payload), msg_id=msg_id)


def test_the_same_message_in_two_upstreams_batches_is_decoded_once() -> None:
    first = EventBatch(1, [_chat(901, "hello")], "", "")
    second = EventBatch(5, [_chat(901, "hello")], "", "")  # another credential's upstream
    (one,) = first.events()
    (two,) = second.events()
    assert two is one
    assert one == decode(_chat(901, "hello"))
    assert one["type"] == "WebcastChatMessage" and one["data"]["content"] == "hello"
    assert one["data"]["common"]["msg_id"] == "901"


def test_messages_that_differ_are_decoded_apart() -> None:
    (a,) = EventBatch(1, [_chat(902, "one")], "", "").events()
    (b,) = EventBatch(2, [_chat(902, "two")], "", "").events()  # same id, other bytes
    assert a["data"]["content"] == "one" and b["data"]["content"] == "two"
