"""The one pooled httpx client every upstream call goes through."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from livegate.config import Settings

# A desktop browser; browser_name/browser_version in TikTok queries must match it.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    # The client is shared by every user: its own cookie jar must keep nothing, or one
    # user's TikTok session could ride along on another user's request.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.upstream_timeout, connect=min(2.0, settings.upstream_timeout)
        ),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        headers={"User-Agent": DEFAULT_USER_AGENT},
        cookies=no_cookies,
        follow_redirects=False,
    )
