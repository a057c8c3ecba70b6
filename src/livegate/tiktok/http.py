"""The one pooled upstream client every call to TikTok goes through.

An httpx client whose transport is livegate's own keep-alive pool (connections.py). The passport
and signer use the httpx API; the webcast client, which runs on every LIVE connection start,
uses `send_buffered`, which goes to the same pool without httpx's request and response models
(URL parsing, auth flow, redirects, cookie extraction, event hooks, none of which these calls
need). Either way callers only see httpx's exception types.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from livegate.config import Settings
from livegate.tiktok.connections import (
    DEFAULT_PORTS,
    ConnectionPool,
    checked_head,
    encode_head,
    split_url,
)

# A desktop browser; browser_name/browser_version in TikTok queries must match it.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
ACCEPT_ENCODING = "gzip, deflate"  # what `decoded` can undo
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def decoded(body: bytes, content_encoding: str | None) -> bytes:
    """`body` with its Content-Encoding undone (gzip, deflate), or httpx.DecodingError."""
    if not content_encoding:
        return body
    try:
        for coding in reversed(content_encoding.lower().split(",")):
            coding = coding.strip()
            if coding in ("gzip", "x-gzip"):
                gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = gunzip.decompress(body) + gunzip.flush()
                if not gunzip.eof:
                    raise httpx.DecodingError("the gzip body is cut short")
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:  # raw deflate, without the zlib wrapper
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding not in ("", "identity"):
                raise httpx.DecodingError(f"unsupported Content-Encoding {coding!r}")
    except zlib.error as exc:
        raise httpx.DecodingError(f"undecodable {content_encoding} body: {exc}") from exc
    return body


@dataclass(slots=True)
class BufferedResponse:
    """A whole upstream answer: status, headers as sent (names lower-cased), decoded body."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    content: bytes
    _first: dict[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first value of header `name`. Looked up in a dict made once, in C, on the first
        call: every fetch reads two headers, and a Python loop over the list for each cost more."""
        first = self._first
        if first is None:
            first = self._first = dict(reversed(self.raw_headers))
        value = first.get(name.lower().encode())
        return None if value is None else value.decode("latin-1")

    def header_list(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [value.decode("latin-1") for found, value in self.raw_headers if found == key]

    @property
    def charset(self) -> str | None:
        """Content-Type's charset, read when a text is wanted: the fetch path never is."""
        found = _CHARSET.search(self.header("content-type") or "")
        return found.group(1) if found else None

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _KeepNothing(CookieJar):
    """httpx's own jar for the shared client: Set-Cookie answers are not even parsed."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx requests sent through the pool; the answer's body is left for httpx to decode."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"not an http or https URL: {url.scheme!r}")
        origin = (url.scheme, url.raw_host.decode("ascii"), url.port or DEFAULT_PORTS[url.scheme])
        body = await request.aread()
        headers = request.headers.raw
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        head = request.method.encode() + b" " + url.raw_path + b" HTTP/1.1\r\n" + lines + b"\r\n"
        timeout = request.extensions.get("timeout", {})
        answer = await self.pool.send(
            origin,
            checked_head(head, len(headers)) + body,
            connect_timeout=timeout.get("connect"),
            read_timeout=timeout.get("read"),
            bodyless=request.method == "HEAD",
        )
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(answer.body),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self.pool.close()


class UpstreamClient(httpx.AsyncClient):
    """The shared httpx client, plus `send_buffered` for the calls made on every LIVE poll."""

    def __init__(self, settings: Settings) -> None:
        self.pool = ConnectionPool()
        timeout = httpx.Timeout(
            settings.upstream_timeout, connect=min(2.0, settings.upstream_timeout)
        )
        self.connect_timeout = timeout.connect
        super().__init__(
            transport=PooledTransport(self.pool),
            timeout=timeout,
            headers={"User-Agent": DEFAULT_USER_AGENT},
            # The client is shared by every user: a jar that kept Set-Cookie answers would send
            # one user's TikTok session along with another user's request.
            cookies=_KeepNothing(),
            follow_redirects=False,
        )

    async def send_buffered(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None = None
    ) -> BufferedResponse:
        """`method url` with exactly `headers` (none of the client's), answer read whole.

        No read timeout of its own: the one caller, WebcastClient, bounds each call with its
        own deadline (one timer per poll instead of two)."""
        origin, host, target = split_url(url)
        lines = [("Host", host), *headers.items(), ("Accept-Encoding", ACCEPT_ENCODING)]
        if content is not None:
            lines.append(("Content-Length", str(len(content))))
        head = encode_head(f"{method} {target} HTTP/1.1\r\n", lines)
        answer = await self.pool.send(
            origin,
            head + content if content else head,
            connect_timeout=self.connect_timeout,
            read_timeout=None,
            bodyless=method == "HEAD",
        )
        response = BufferedResponse(answer.status, answer.headers, answer.body)
        response.content = decoded(answer.body, response.header("content-encoding"))
        return response


def make_http_client(settings: Settings) -> UpstreamClient:
    return UpstreamClient(settings)
