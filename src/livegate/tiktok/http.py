"""The one pooled HTTP client every call to TikTok and to a sign server goes through.

aiohttp's `ClientSession` and its keep-alive pool, with limits and timeouts from here and
`Settings`. aiohttp rather than httpx because the gateway's fetch path is dominated by the
client's own CPU per call; the measurement that decided it is in docs/benchmarks.md.

`Upstream.send` is the only way out: it sends exactly the headers it is given (plus a browser's
User-Agent and Accept-Encoding when absent), the URL's query byte for byte (signatures cover
it), keeps no cookie, follows no redirect, reads no proxy from the environment, and turns every
transport failure into one of `tiktok.errors`' types, so callers handle TikTok's answers only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from livegate.config import Settings
from livegate.tiktok.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

# A desktop browser; browser_name/browser_version in TikTok queries must match it.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
# What aiohttp undoes by itself (a browser would also offer br and zstd).
ACCEPT_ENCODING = "gzip, deflate"
# Connections open at once over all hosts; a burst of LIVE connection starts must queue here
# rather than open sockets without bound.
MAX_CONNECTIONS = 200
KEEPALIVE_EXPIRY = 15.0
# A host that takes longer than this to accept a connection is down, whatever the call's budget.
MAX_CONNECT_TIMEOUT = 2.0
# TikTok's answers are pages and protobuf batches of some kilobytes; nothing upstream may make
# the gateway hold more than this for one call.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream answer, read whole."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode(_charset(self.headers), errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)

    def header_list(self, name: str) -> list[str]:
        return self.headers.getall(name, [])

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers


def _charset(headers: CIMultiDictProxy[str]) -> str:
    _, _, params = (headers.get("content-type") or "").partition(";")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
                return value.strip('"')
            except LookupError:
                break
    return "utf-8"


def _target(url: str, params: dict[str, str] | None) -> URL:
    """The URL as given, never re-escaped: a signature covers the exact query."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UpstreamError("refused to send a URL with control characters")
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    try:
        return URL(url.replace(" ", "%20"), encoded=True)
    except ValueError as exc:
        raise UpstreamError(f"invalid upstream URL ({exc})") from None


class Upstream:
    """The shared client. Its session is made on first use, inside the serving event loop."""

    def __init__(self, settings: Settings) -> None:
        self._timeout = settings.upstream_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_EXPIRY
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The client is shared by every user: a jar that kept Set-Cookie answers would
                # send one user's TikTok session along with another user's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Only the caller's headers go out, never aiohttp's own User-Agent or Accept.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                # HTTP(S)_PROXY and friends are not read (README): an environment variable
                # cannot route users' sessions elsewhere.
                trust_env=False,
            )
        return self._session

    def _timeouts(self, total: float | None) -> aiohttp.ClientTimeout:
        budget = total or self._timeout
        return aiohttp.ClientTimeout(
            total=budget, sock_connect=min(MAX_CONNECT_TIMEOUT, budget), sock_read=budget
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: bytes | str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request, answered whole; an `UpstreamError` when no answer could be read."""
        out = {"User-Agent": DEFAULT_USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        out.update(headers or {})
        target = _target(url, params)
        data = body.encode() if isinstance(body, str) else body
        host = target.host or "upstream"
        try:
            async with self._client().request(
                method,
                target,
                headers=out,
                data=data,
                allow_redirects=False,
                timeout=self._timeouts(timeout),
            ) as response:
                content = await _read_capped(response)
                return Answer(response.status, response.headers, content, str(response.url))
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamUnreachable(f"{host}: connect timeout", timed_out=True) from None
        except TimeoutError:
            raise UpstreamTimeout(f"{host}: no answer in time") from None
        except aiohttp.ClientConnectionError as exc:
            raise UpstreamUnreachable(f"{host}: {type(exc).__name__}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise UpstreamError(f"{host}: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    if (response.content_length or 0) > MAX_ANSWER_BYTES:
        raise UpstreamError(f"answer of {response.content_length} bytes is over the limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise UpstreamError(f"answer over {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_http_client(settings: Settings) -> Upstream:
    return Upstream(settings)
