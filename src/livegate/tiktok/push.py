"""TikTok's push WebSocket: the connection a fetch result's `push_server` names.

livegate opens it for the relay (webcast/relay.py) when a fetch was signed with the user's
session: TikTok binds that socket to the session, so the handshake must carry the same
`sessionid` cookie, or TikTok answers HTTP 200 + `handshake-msg: illegal secret key`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from livegate.tiktok.cookies import cookie_header
from livegate.tiktok.http import DEFAULT_USER_AGENT

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 4.0
# TikTok's push frames are kilobytes (and TikTokLive's client refuses frames over websockets'
# default of 1 MiB); a larger one closes the socket (1009) instead of being held in memory.
MAX_FRAME_BYTES = 4 * 1024 * 1024


class PushRefused(Exception):
    """TikTok refused the handshake; its status and TikTok's own handshake headers."""

    def __init__(self, status: int, handshake_status: str, handshake_msg: str) -> None:
        super().__init__(handshake_msg)
        self.status = status
        self.handshake_status = handshake_status
        self.handshake_msg = handshake_msg


class PushUnreachable(Exception):
    """The push server could not be reached, or the handshake did not finish in time."""


class PushSocket:
    """An open push WebSocket: frames in both directions, as TikTok sends them."""

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn

    @property
    def subprotocol(self) -> str | None:
        return self._conn.subprotocol

    @property
    def handshake_options(self) -> str | None:
        """TikTok's `handshake-options` header (ping interval and the like)."""
        response = self._conn.response
        return response.headers.get("handshake-options") if response else None

    @property
    def close_code(self) -> int | None:
        return self._conn.close_code

    async def send(self, message: bytes | str) -> None:
        await self._conn.send(message)

    async def frames(self) -> AsyncIterator[bytes | str]:
        async for message in self._conn:
            yield message

    async def close(self) -> None:
        await self._conn.close()


async def open_push(
    url: str,
    *,
    cookies: dict[str, str],
    user_agent: str | None,
    subprotocols: list[str],
) -> PushSocket:
    """Open `url` (the push server with the client's query) with these cookies."""
    headers = {"Cookie": cookie_header(cookies), "User-Agent": user_agent or DEFAULT_USER_AGENT}
    try:
        conn = await ws_connect(
            url,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=2,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            proxy=None,
        )
    except websockets.exceptions.InvalidStatus as exc:
        resp = exc.response
        log.info("TikTok refused the push WebSocket handshake (HTTP %s)", resp.status_code)
        raise PushRefused(
            resp.status_code,
            resp.headers.get("handshake-status", str(resp.status_code)),
            resp.headers.get("handshake-msg", "upstream refused the WebSocket"),
        ) from None
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
        log.info("TikTok's push WebSocket is unreachable: %s", type(exc).__name__)
        raise PushUnreachable(type(exc).__name__) from None
    return PushSocket(conn)
