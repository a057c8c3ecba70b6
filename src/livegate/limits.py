"""Size limits on every request, enforced before the request is read any further.

Two layers, because the ASGI app only ever sees a request whose head uvicorn has already
read whole:

- `RequestLimits`, middleware around every route (app.py): a head over the limit gets 431
  (header fields) or 414 (request target); a body whose Content-Length is over the limit
  gets 413 before a byte of it is read; a chunked body gets 413 as soon as what the app has
  read of it passes the limit, and no more of it is read.
- `head_limited_protocol` for `livegate serve`: uvicorn's httptools protocol, which
  otherwise buffers a head of any size (an 8 MB header line is kept, and re-copied as it
  grows), answering 431 and closing once the head being read passes the limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from livegate.config import Settings
from livegate.errors import error_response

# Token, revocation, introspection and sign-in bodies are a few hundred bytes.
OAUTH_MAX_BODY = 64 * 1024
OAUTH_PREFIX = "/tiktok/oauth/"
# The server closes the connection after these answers: the rest of the request is unread.
_CLOSE = {"Connection": "close"}
# Set in a request's scope by a route whose answer streams until the client leaves (the SSE
# event stream): `livegate serve` closes such a connection when it shuts down.
ENDLESS = "livegate.endless"


class BodyTooLarge(HTTPException):
    """Raised out of `receive` once a body passes the limit: the app stops reading it. An
    HTTPException, so the app's own handlers answer it quietly; the 413 is already sent."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _refusal(scope: Scope, status: int, message: str) -> Response:
    error = "invalid_request"
    json_request = any(
        name == b"content-type" and value.split(b";")[0].strip().lower() == b"application/json"
        for name, value in scope["headers"]
    )
    return error_response(scope["path"], json_request, status, error, message, _CLOSE)


class RequestLimits:
    """ASGI middleware: 431/414 for an oversized head, 413 for an oversized body."""

    def __init__(self, app: ASGIApp, max_body: int, max_head: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_head = max_head

    def body_limit(self, path: str) -> int:
        return (
            min(self.max_body, OAUTH_MAX_BODY) if path.startswith(OAUTH_PREFIX) else self.max_body
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        head, has_body = 4 * len(headers), False  # each field is "name: value\r\n"
        for name, value in headers:
            head += len(name) + len(value)
            if name == b"content-length" or name == b"transfer-encoding":
                has_body = True
        target = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        if head <= self.max_head and target <= self.max_head and not has_body:
            await self.app(scope, receive, send)  # every GET of the webcast API
            return
        refusal = self._head_refusal(head, target)
        if refusal is None and scope["type"] == "http":
            limit = self.body_limit(scope["path"])
            length = next((v for k, v in headers if k == b"content-length"), None)
            # The server delivers exactly Content-Length bytes of body: no need to count them.
            if length is not None and not (
                length.isdigit() and len(length) <= 18 and int(length) <= limit
            ):
                refusal = (413, f"The request body is larger than {limit} bytes.")
            elif length is None:  # chunked
                await self._counted(scope, receive, send, limit)
                return
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1009})
        else:
            await _refusal(scope, *refusal)(scope, receive, send)

    def _head_refusal(self, head: int, target: int) -> tuple[int, str] | None:
        if head > self.max_head:
            return 431, f"The request's header fields are larger than {self.max_head} bytes."
        if target > self.max_head:
            return 414, f"The request's URL is longer than {self.max_head} bytes."
        return None

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A chunked body: counted as the app reads it; 413 once it passes `limit`."""
        received = 0
        started = refused = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's own answer to the exception below; ours went first
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def receive_counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        refused = True
                        message413 = f"The request body is larger than {limit} bytes."
                        await _refusal(scope, 413, message413)(scope, receive, send)
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, receive_counted, send_unless_refused)
        except BodyTooLarge:
            if not refused:
                raise


def head_limited_protocol(max_head: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol that answers 431 and closes once a request head being
    read is over `max_head` bytes (plus at most the one read that began it).

    httptools keeps every byte of an unfinished header line, so without this a client
    decides how much memory its connection holds. Bytes are counted per read of the socket:
    a read that starts a request is not counted (it may end the one before), each following
    read is, until the head is complete.
    """

    class HeadLimitedProtocol(HttpToolsProtocol):
        _began = False
        _in_head = False
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            continuing = self._in_head
            self._began = False
            super().data_received(data)
            if continuing and self._in_head and not self._began and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > max_head:
                    self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._began = self._in_head = True
            self._head_bytes = 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def shutdown(self) -> None:
            # A graceful shutdown waits for the answers in progress to finish; an endless one
            # (the event stream) never would, and would hold the drain to its timeout. Its
            # connection is closed instead: the app sees the client go, and the client
            # reconnects elsewhere (with Last-Event-ID).
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and cycle.scope.get(ENDLESS):
                self.transport.close()
                return
            super().shutdown()

        def _refuse_head(self) -> None:
            message = f"The request head is larger than {max_head} bytes."
            self.logger.info("refused a request head over %d bytes", max_head)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + message.encode()
            )
            self.transport.close()

    return HeadLimitedProtocol


def server_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn options for `livegate serve` that bound what it buffers of a request head."""
    return {
        "http": head_limited_protocol(settings.max_header_bytes),
        # Only read if someone selects uvicorn's h11 protocol instead: the same bound.
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
