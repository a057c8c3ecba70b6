"""The one pooled upstream client every call to TikTok goes through.

An httpx client whose transport is aiohttp (through `httpx-aiohttp`, the adapter the OpenAI
and Anthropic SDKs offer), not httpcore. Measured on the benchmark machine, one keep-alive GET
cost 662 µs of CPU through httpx on httpcore, 357 µs through httpx on aiohttp and 110 µs
through aiohttp alone. The passport and signer use the httpx API; the webcast client, which
runs on every LIVE connection start, uses `send_buffered`, which goes straight to the same
aiohttp session. Either way callers only see httpx's exception types: aiohttp's errors are
mapped here, including those raised while a body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar
from typing import Any, NoReturn

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from multidict import CIMultiDictProxy
from yarl import URL

from livegate.config import Settings

# A desktop browser; browser_name/browser_version in TikTok queries must match it.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
MAX_CONNECTIONS = 200
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def as_httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx exception that says what an aiohttp failure means for the caller."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.TimeoutException(message)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return httpx.ProxyError(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    return httpx.NetworkError(message)


def _aiohttp_cause(exc: BaseException) -> BaseException | None:
    """The aiohttp failure behind `exc`, whether or not the adapter already wrapped it."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, (aiohttp.ClientError, asyncio.TimeoutError)):
            return candidate
    return None


def _raise_as_httpx(exc: Exception) -> NoReturn:
    """Raise `exc`, or the httpx error for the aiohttp failure behind it."""
    cause = _aiohttp_cause(exc)
    if cause is None:
        raise exc
    raise as_httpx_error(cause) from cause


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """aiohttp failures raised inside, bare or wrapped by the adapter, leave as httpx's types."""
    try:
        yield
    except Exception as exc:
        _raise_as_httpx(exc)


@dataclass(slots=True)
class BufferedResponse:
    """A whole upstream answer: status, headers (case-insensitive), decoded body."""

    status_code: int
    headers: CIMultiDictProxy[str]  # as aiohttp read them
    content: bytes

    @property
    def charset(self) -> str | None:
        """Content-Type's charset, read when a text is wanted: the fetch path never is."""
        found = _CHARSET.search(self.headers.get("content-type", ""))
        return found.group(1) if found else None

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def header_list(self, name: str) -> list[str]:
        return self.headers.getall(name, [])


class _MappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _KeepNothing(CookieJar):
    """httpx's own jar for the shared client: Set-Cookie answers are not even parsed."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class UpstreamTransport(AiohttpTransport):
    """aiohttp underneath, httpx's exception types on top; no cookie is ever kept."""

    def __init__(self) -> None:
        super().__init__(client=self._session)

    @staticmethod
    def _session() -> aiohttp.ClientSession:
        # The session is shared by every user: a cookie jar that kept Set-Cookie answers
        # would send one user's TikTok session along with another user's request.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            cookie_jar=aiohttp.DummyCookieJar(),
            # No trust_env: with it aiohttp reads ~/.netrc in a worker thread on every request.
            trust_env=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response

    async def send_buffered(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        timeout: aiohttp.ClientTimeout,
    ) -> BufferedResponse:
        """One request sent and its whole answer read, straight through the aiohttp session."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        try:  # not _httpx_errors(): this runs on every LIVE poll
            async with self.client.request(
                method,
                # As built: signatures (X-Bogus, X-Gnarly) cover the exact query bytes.
                URL(url, encoded=True),
                headers=headers,
                data=content,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                body = await answer.read()  # decoded (gzip, deflate) by aiohttp
        except Exception as exc:
            _raise_as_httpx(exc)
        return BufferedResponse(answer.status, answer.headers, body)


class UpstreamClient(httpx.AsyncClient):
    """The shared httpx client, plus `send_buffered` for the calls made on every LIVE poll.

    `send_buffered` skips httpx's request model and httpx.AsyncClient's per-request layers
    (URL parsing, auth flow, redirect handling, cookie extraction, event hooks), none of
    which these calls need: redirects are off, auth and hooks are unset, and the jar keeps
    nothing. Its answer is a `BufferedResponse`: building an httpx.Response around a body
    already read cost more than the request itself on the fetch path.
    """

    def __init__(self, settings: Settings) -> None:
        self.upstream = UpstreamTransport()
        timeout = httpx.Timeout(
            settings.upstream_timeout, connect=min(2.0, settings.upstream_timeout)
        )
        self.buffered_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read
        )
        super().__init__(
            transport=self.upstream,
            timeout=timeout,
            headers={"User-Agent": DEFAULT_USER_AGENT},
            # httpx's own jar must keep nothing either, for the same reason as the session's.
            cookies=_KeepNothing(),
            follow_redirects=False,
        )

    async def send_buffered(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None = None
    ) -> BufferedResponse:
        """`method url` with exactly `headers` (none of the client's), answer read whole."""
        return await self.upstream.send_buffered(
            method, url, headers, content, self.buffered_timeout
        )


def make_http_client(settings: Settings) -> UpstreamClient:
    return UpstreamClient(settings)
