"""The fetch routes' answer: TikTok's protobuf, with the headers TikTokLive reads."""

from __future__ import annotations

from starlette.responses import Response

from livegate.webcast.service import Fetched

PROTOBUF = "application/x-protobuf"


class FetchResponse(Response):
    """A fetch result: the protobuf as TikTok sent it (push_server aside), the cookies for
    the client (`X-Set-TT-Cookie`) and the room. The raw headers are built here directly:
    Starlette's `init_headers` lower-cases, encodes and scans a dict of them on every poll."""

    media_type = PROTOBUF

    def __init__(self, fetched: Fetched) -> None:
        self.status_code = 200
        self.body = fetched.body
        self.background = None
        self.raw_headers = [
            (b"content-type", PROTOBUF.encode()),
            (b"content-length", str(len(fetched.body)).encode()),
            (b"x-set-tt-cookie", fetched.set_tt_cookie.encode("latin-1")),
            (b"x-room-id", fetched.room_id.encode("latin-1")),
            (b"cache-control", b"no-store"),
        ]
