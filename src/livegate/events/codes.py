"""The close codes of the event stream: the Euler WebSocket SDK 0.0.6's `ClientCloseCode`,
with its `CloseMessageMap` words as the default reasons."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    INTERNAL_SERVER_ERROR = 1011
    WEBCAST_FETCH_ERROR = 4556
    ROOM_INFO_FETCH_ERROR = 4557
    TIKTOK_CLOSED_CONNECTION = 4500
    TOO_MANY_CONNECTIONS = 4429
    INVALID_OPTIONS = 4400
    NOT_LIVE = 4404
    STREAM_END = 4005
    NO_MESSAGES_TIMEOUT = 4006
    INVALID_AUTH = 4401
    NO_PERMISSION = 4403


MESSAGES: dict[CloseCode, str] = {
    CloseCode.ROOM_INFO_FETCH_ERROR: "Error fetching /webcast/room_info",
    CloseCode.WEBCAST_FETCH_ERROR: "Error fetching /webcast/fetch",
    CloseCode.INVALID_AUTH: "Invalid auth",
    CloseCode.NO_PERMISSION: "No permission",
    CloseCode.INTERNAL_SERVER_ERROR: "Internal server error",
    CloseCode.TIKTOK_CLOSED_CONNECTION: "TikTok closed the connection unexpectedly",
    CloseCode.TOO_MANY_CONNECTIONS: "Too many concurrent connections",
    CloseCode.INVALID_OPTIONS: "Invalid options provided",
    CloseCode.NOT_LIVE: "Streamer is not live",
    CloseCode.STREAM_END: "TikTok stream ended",
    CloseCode.NO_MESSAGES_TIMEOUT: "No messages received in timeout period, closing WebSocket",
    CloseCode.NORMAL: "Normal closure",
}
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


class Closing(Exception):
    """End a subscriber's stream with `code`; `detail` says why, in the close reason.
    `refusal` is the HTTP refusal it stands for, when it began as one (a credential, a rate
    limit): the Server-Sent Events stream answers that before it starts."""

    def __init__(self, code: CloseCode, detail: str = "", refusal: Exception | None = None) -> None:
        super().__init__(detail or MESSAGES[code])
        self.code = code
        self.detail = detail
        self.refusal = refusal

    @property
    def reason(self) -> str:
        text = f"{MESSAGES[self.code]}: {self.detail}" if self.detail else MESSAGES[self.code]
        data = text.encode("utf-8")[:MAX_REASON_BYTES]
        return data.decode("utf-8", errors="ignore")
