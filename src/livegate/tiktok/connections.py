"""Pooled keep-alive HTTP/1.1 connections to TikTok's hosts: every upstream call goes through here.

A connection is an asyncio protocol whose answers httptools reads (llhttp, the parser uvicorn
serves livegate's own requests with). aiohttp's client did this before. On the benchmark VM, one
request per 100 ms, a bare pass-through proxy on uvicorn added +0.92 ms at p50 over calling the
upstream directly with aiohttp's client, and +0.36 ms with this pool: at that rate every line of
code runs from cold caches, and aiohttp's request and answer objects were most of the hop.

Answers are read whole (TikTok's are small and no caller streams them) and handed back as sent,
Content-Encoding included: decoding is the caller's (http.py). Failures are httpx's exception
types, which is what every caller catches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from dataclasses import dataclass

import httptools
import httpx

MAX_CONNECTIONS = 200  # requests in flight at once, over all hosts
KEEPALIVE = 15.0  # s an idle connection is kept for the next request
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]  # in the order sent; names lower-cased
    body: bytes  # as sent: still in its Content-Encoding


def encode_head(request_line: str, headers: list[tuple[str, str]]) -> bytes:
    """A request's head as bytes, refused if a value would start a header or request of its own."""
    # Joined by str.join over map, not an f-string per header: no bytecode runs per header.
    lines = "\r\n".join(map(": ".join, headers))
    text = f"{request_line}{lines}\r\n\r\n" if headers else f"{request_line}\r\n"
    try:
        head = text.encode()
    except UnicodeEncodeError as exc:
        raise httpx.LocalProtocolError("a header holds text that is not Unicode") from exc
    return checked_head(head, len(headers))


def checked_head(head: bytes, header_count: int) -> bytes:
    # Every CR and LF of a sound head ends a line: one after the request line, one per header
    # and the blank line. Any other (from a sign server's headers, say) would smuggle a line in.
    lines = header_count + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
        raise httpx.LocalProtocolError("a request target or header holds a control character")
    return head


# Parsed origins by scheme and authority: a handful of TikTok hosts and the sign server.
_ORIGINS: dict[str, tuple[Origin, str]] = {}
MAX_ORIGINS = 256


def split_url(url: str) -> tuple[Origin, str, str]:
    """`url` as the origin to connect to, its Host header and the request target, kept byte
    for byte as given: signatures (X-Bogus, X-Gnarly) cover the exact query."""
    scheme, _, rest = url.partition("://")
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark, 0, cut)
        if at != -1:
            cut = at
    key = url[: len(url) - len(rest) + cut]
    known = _ORIGINS.get(key)
    if known is None:
        known = _parse_origin(scheme, rest[:cut])
        if len(_ORIGINS) < MAX_ORIGINS:
            _ORIGINS[key] = known
    target = rest[cut:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    if not target.isascii() or " " in target:
        raise httpx.LocalProtocolError("the request target must be ASCII without spaces")
    return known[0], known[1], target


def _parse_origin(scheme: str, authority: str) -> tuple[Origin, str]:
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"not an http or https URL (scheme {scheme!r})")
    if "@" in authority:
        raise httpx.UnsupportedProtocol("credentials in an upstream URL are not supported")
    host, port = authority, ""
    if authority.startswith("["):  # an IPv6 literal
        end = authority.find("]")
        tail = authority[end + 1 :] if end != -1 else "?"
        if tail and not tail.startswith(":"):
            raise httpx.UnsupportedProtocol(f"malformed host {authority!r}")
        host, port = authority[1:end], tail[1:]
    elif ":" in authority:
        host, _, port = authority.rpartition(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise httpx.UnsupportedProtocol(f"malformed host {authority!r}")
    return (scheme, host, int(port) if port else DEFAULT_PORTS[scheme]), authority


class _Connection(asyncio.Protocol):
    """One connection: a request written, its answer parsed as it arrives, then the next."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.bodyless = False  # the answer to a HEAD: no body, whatever its headers say
        self.reusable = True
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._settle(error=httpx.RemoteProtocolError(f"unreadable HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and exc is None and self._until_close():
            self._complete()
        elif self.headers_done:
            self._settle(error=httpx.ReadError("the connection closed in the middle of an answer"))
        else:
            self._settle(error=httpx.RemoteProtocolError("the connection closed without an answer"))

    def _until_close(self) -> bool:
        """Whether the answer has no length, so that its body ends with the connection."""
        names = {name for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.headers = []  # an interim answer: the real one follows on this connection
            return
        self.headers_done = True
        self.reusable = self.parser.should_keep_alive()
        if self.bodyless:
            self.reusable = False  # llhttp would still wait for the body the headers announce
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self._complete()

    # -- the pool's side ------------------------------------------------------------------

    def exchange(
        self, request: bytes, timeout: float | None, *, bodyless: bool
    ) -> asyncio.Future[Answer]:
        """Start one request; its answer, or the failure, arrives on the future returned."""
        assert self.transport is not None
        self.waiter = waiter = self.loop.create_future()
        self.headers, self.body = [], []
        self.headers_done = False
        self.bodyless = bodyless
        if timeout is not None:
            self.timer = self.loop.call_later(timeout, self._timed_out)
        self.transport.write(request)
        return waiter

    def usable(self, now: float) -> bool:
        return (
            not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < KEEPALIVE
        )

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self.timer = None
        self._settle(error=httpx.ReadTimeout("TikTok did not answer in time"))

    def _complete(self) -> None:
        status = self.parser.get_status_code()
        self._settle(answer=Answer(status, self.headers, b"".join(self.body)))

    def _settle(self, *, answer: Answer | None = None, error: Exception | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for, or a broken answer already reported: never reuse.
            self.close()
            return
        if error is not None:
            self.close()
            waiter.set_exception(error)
        else:
            waiter.set_result(answer)  # type: ignore[arg-type]


class ConnectionPool:
    """Idle keep-alive connections per origin, most recently used first."""

    def __init__(
        self, max_connections: int = MAX_CONNECTIONS, tls: ssl.SSLContext | None = None
    ) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        # A counter, not an asyncio.Semaphore: its acquire and release coroutines were a
        # measurable share of a proxied fetch, and the limit is almost never reached.
        self._max = max_connections
        self._in_flight = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl = tls  # None: the system's trust store, made on the first https request

    async def send(
        self,
        origin: Origin,
        request: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        bodyless: bool = False,
    ) -> Answer:
        """Send `request` (head and body, as bytes) to `origin` and read its whole answer.

        `read_timeout` None: no timer of its own, for a caller that bounds the call itself."""
        if self._in_flight >= self._max:
            await self._slot()
        self._in_flight += 1
        try:
            conn = self._idle_connection(origin) or await self._connect(origin, connect_timeout)
            try:
                answer = await conn.exchange(request, read_timeout, bodyless=bodyless)
            except BaseException:
                conn.close()  # cancelled or failed mid-exchange: its state is unknown
                raise
            if conn.reusable and not conn.closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
            return answer
        finally:
            self._in_flight -= 1
            self._wake_one()

    async def _slot(self) -> None:
        """Wait until fewer than `max_connections` requests are in flight."""
        loop = asyncio.get_running_loop()
        while self._in_flight >= self._max:
            turn = loop.create_future()
            self._waiting.append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._wake_one()  # woken, then cancelled: the slot goes to the next
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(turn)

    def _wake_one(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                # The oldest are left by a burst that is over: closed here, not kept open.
                while idle and not idle[0].usable(now):
                    idle.pop(0).close()
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = _Connection(loop)
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took too long") from exc
        except OSError as exc:  # refused, unreachable, TLS handshake or certificate
            raise httpx.ConnectError(f"connecting to {host}:{port}: {exc}") from exc
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl
