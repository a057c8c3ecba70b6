"""The one pooled httpx client every call to TikTok and to a sign server goes through.

httpx's own transport (httpcore's keep-alive pool) with limits and timeouts from here and
`Settings`. Callers see httpx's exception types, which they turn into `tiktok.errors` ones.
"""

from __future__ import annotations

from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from livegate.config import Settings

# A desktop browser; browser_name/browser_version in TikTok queries must match it.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
# Requests in flight at once over all hosts; a burst of LIVE connection starts must queue
# here rather than open sockets without bound.
MAX_CONNECTIONS = 200
# Idle connections kept for the next request: TikTok's hosts and the sign server are few.
MAX_KEEPALIVE_CONNECTIONS = 50
KEEPALIVE_EXPIRY = 15.0
# A host that takes longer than this to accept a connection is down, whatever the call's budget.
MAX_CONNECT_TIMEOUT = 2.0


class KeepNothing(CookieJar):
    """The shared client's jar: Set-Cookie answers are neither parsed nor kept."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.upstream_timeout,
            connect=min(MAX_CONNECT_TIMEOUT, settings.upstream_timeout),
        ),
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        ),
        headers={"User-Agent": DEFAULT_USER_AGENT},
        # The client is shared by every user: a jar that kept Set-Cookie answers would send
        # one user's TikTok session along with another user's request.
        cookies=KeepNothing(),
        follow_redirects=False,
        # Upstream calls go straight to their host: HTTP(S)_PROXY and friends are not read
        # (README), so an environment variable cannot route users' sessions elsewhere.
        trust_env=False,
    )
