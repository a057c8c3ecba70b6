"""Shared by the event stream tests: open `GET /webcast/events`, read its frames, wait for its
close code."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from TikTokLive.proto import ProtoMessageFetchResult, WebcastChatMessage, WebcastPushFrame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect


def events_url(gw_url: str, **query: str) -> str:
    return gw_url.replace("http://", "ws://") + "/webcast/events?" + urlencode(query)


def open_events(gw_url: str, *, token: str | None = None, **query: str) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return ws_connect(events_url(gw_url, **query), additional_headers=headers, open_timeout=10)


def first_json(ws: ClientConnection, timeout: float = 10) -> Any:
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), message
    return json.loads(message)


def closed_with(ws: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """The close code and reason, skipping whatever frames still come first."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            ws.recv(timeout=left)
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError(f"the stream was still open after {timeout} s")


def json_events(ws: ClientConnection, want: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Decoded events from `format=json` frames (bundled or not) until `want` have come."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {len(events)} events came: {events}")
        data = json.loads(ws.recv(timeout=left))
        events.extend(data.get("messages", [data]))
    return events


def chat_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["content"] for e in events if e["type"] == "WebcastChatMessage"]


def binary_chats(ws: ClientConnection, want: int, timeout: float = 10) -> list[str]:
    """Chat texts from binary push frames until `want` have come."""
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while len(texts) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {texts} came")
        frame = WebcastPushFrame().parse(ws.recv(timeout=left))
        result = ProtoMessageFetchResult().parse(frame.payload)
        texts += [
            WebcastChatMessage().parse(m.payload).content
            for m in result.messages
            if m.method == "WebcastChatMessage"
        ]
    return texts


def sim_room(sim_url: str, room_id: str) -> dict[str, Any]:
    r = httpx.get(f"{sim_url}/_sim/rooms/{room_id}", timeout=10)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def push_connects(sim_url: str, room_id: str) -> int:
    return sum(1 for e in sim_room(sim_url, room_id)["ws_log"] if e["type"] == "connect")


# -- Server-Sent Events (GET /webcast/rooms/{unique_id}/events) -------------------------------


def sse_url(gw_url: str, unique_id: str, **query: str) -> str:
    tail = f"?{urlencode(query)}" if query else ""
    return f"{gw_url}/webcast/rooms/{unique_id}/events{tail}"


class SseReader:
    """Reads a `text/event-stream` answer event by event: each as {event, id, data, comment}
    (`data` decoded from JSON; `comment` for a block of comment lines only)."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self.response = response
        self.lines = response.iter_lines()

    def next(self) -> dict[str, Any]:
        block: dict[str, Any] = {"event": "message", "id": None, "data": None, "comment": None}
        data: list[str] = []
        for line in self.lines:
            if line == "":
                if data:
                    block["data"] = json.loads("\n".join(data))
                    return block
                if block["comment"] is not None:
                    return block
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                block["comment"] = value
            elif field == "data":
                data.append(value)
            elif field in ("event", "id"):
                block[field] = value
        raise AssertionError("the stream ended")

    def events(self, want: int, timeout: float = 15) -> list[dict[str, Any]]:
        """The next `want` events that carry an id (keep-alive comments skipped)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < want:
            assert time.monotonic() < deadline, f"only {len(got)} events came: {got}"
            block = self.next()
            if block["comment"] is None:
                assert block["event"] == "message" and block["id"], block
                got.append(block)
        return got

    def until_error(self, timeout: float = 15) -> dict[str, Any]:
        """The closing `event: error`'s data, skipping what comes first; the stream ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            block = self.next()
            if block["event"] == "error":
                data: dict[str, Any] = block["data"]
                assert list(self.lines) == []
                return data
        raise AssertionError(f"no error event within {timeout} s")


def open_sse(
    client: httpx.Client,
    gw_url: str,
    unique_id: str,
    headers: dict[str, str] | None = None,
    **query: str,
) -> contextlib.AbstractContextManager[httpx.Response]:
    return client.stream("GET", sse_url(gw_url, unique_id, **query), headers=headers)
