"""Request signing: TikTok's web endpoints want X-Bogus/X-Gnarly/msToken on the URL.

livegate does not compute signatures itself. A `Signer` turns an unsigned URL into the URL,
user agent, headers and cookies to send. `SignServerSigner` asks any Euler-compatible sign
server; `PassThroughSigner` sends the URL unchanged, for upstreams that do not check signatures.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from livegate import metrics
from livegate.config import Settings
from livegate.tiktok.errors import UpstreamBlocked, UpstreamError
from livegate.tiktok.http import Answer, Upstream

log = logging.getLogger(__name__)

# Signatures are bound to the exact URL; stale ones must not reach the sign server.
_SIGNATURE_PARAMS = ("X-Bogus", "X-Gnarly", "msToken")


@dataclass
class SignedRequest:
    url: str
    user_agent: str
    headers: dict[str, str] = field(default_factory=dict)
    # Cookies the signer adds to the request (msToken...), on top of the caller's jar.
    cookies: dict[str, str] = field(default_factory=dict)


class Signer(Protocol):
    async def sign(
        self,
        url: str,
        *,
        method: str = "GET",
        user_agent: str,
        cookies: dict[str, str] | None = None,
        payload: str | None = None,
    ) -> SignedRequest: ...


class PassThroughSigner:
    """Adds no signature: the request goes out exactly as built."""

    async def sign(
        self,
        url: str,
        *,
        method: str = "GET",
        user_agent: str,
        cookies: dict[str, str] | None = None,
        payload: str | None = None,
    ) -> SignedRequest:
        return SignedRequest(url=url, user_agent=user_agent)


def strip_signature(url: str) -> str:
    for param in _SIGNATURE_PARAMS:
        url = re.sub(rf"(?<=[?&]){re.escape(param)}=[^&]*&?", "", url)
    return url.rstrip("&").rstrip("?")


class SignServerSigner:
    """An Euler-compatible sign server: `POST {base}/webcast/sign_url?client=ttlive-other`.

    The user's `sessionid` is not sent unless `forward_session` is set: the design promises the
    session never leaves livegate, and signing a plain web request does not need it.
    """

    def __init__(
        self,
        http: Upstream,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 3.5,
        forward_session: bool = False,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.forward_session = forward_session

    async def sign(
        self,
        url: str,
        *,
        method: str = "GET",
        user_agent: str,
        cookies: dict[str, str] | None = None,
        payload: str | None = None,
    ) -> SignedRequest:
        cookies = cookies or {}
        body: dict[str, Any] = {
            "url": strip_signature(url),
            "user_agent": user_agent,
            "method": method.upper(),
            "type": "fetch",
        }
        if payload:
            body["payload"] = payload
        if self.forward_session and cookies.get("sessionid"):
            body["session_id"] = cookies["sessionid"]
        if cookies.get("tt-target-idc"):
            body["tt_target_idc"] = cookies["tt-target-idc"]
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        with metrics.counting_upstream("signer/sign_url"):
            resp = await self.http.send(
                "POST",
                f"{self.base_url}/webcast/sign_url",
                params={"client": "ttlive-other"},
                body=json.dumps(body),
                headers=headers | {"Content-Type": "application/json"},
                timeout=self.timeout,
            )
            return self._parse(resp, url, user_agent)

    def _parse(self, resp: Answer, url: str, user_agent: str) -> SignedRequest:
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(f"sign server answered HTTP {resp.status} without JSON")
        code = data.get("code")
        message = str(data.get("message") or "")[:200]
        if resp.status == 403 or code == 403:
            # Euler's "premium endpoint" refusal: the key may not sign this URL.
            raise UpstreamBlocked(f"sign server refused to sign: {message or 'forbidden'}")
        if resp.status == 429 or code == 429:
            raise UpstreamError(f"sign server rate limit: {message or 'too many requests'}")
        if resp.status != 200 or (code is not None and code not in (0, 200)):
            raise UpstreamError(f"sign server error {code or resp.status}: {message}")
        result = data.get("response")
        if not isinstance(result, dict) or not result.get("signed_url"):
            raise UpstreamError("sign server returned no signed_url")
        signed_url = str(result["signed_url"])
        # The user's cookies follow the signed URL; a sign server must not be able to send
        # them to a host of its choosing.
        if _origin(signed_url) != _origin(url):
            raise UpstreamError("sign server returned a URL for another host")
        return SignedRequest(
            url=signed_url,
            user_agent=str(result.get("user_agent") or user_agent),
            headers=_str_dict(result.get("request_headers")),
            cookies=_sign_cookies(result),
        )


def _origin(url: str) -> tuple[str, str]:
    try:
        parsed = urlsplit(url)
        return (parsed.scheme.lower(), parsed.netloc.lower())
    except ValueError:
        return ("", "")


def _str_dict(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _sign_cookies(result: dict[str, Any]) -> dict[str, str]:
    """The sign server's cookies: a list of `{name, value, ...}` records or of plain maps."""
    out: dict[str, str] = {}
    raw = result.get("cookies")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "name" in item and "value" in item:
            out[str(item["name"])] = str(item["value"])
        else:
            out.update(_str_dict(item))
    tokens = _str_dict(result.get("tokens"))
    if tokens.get("msToken") and "msToken" not in out:
        out["msToken"] = tokens["msToken"]
    return out


def make_signer(settings: Settings, http: Upstream) -> Signer:
    if settings.signer_url:
        return SignServerSigner(
            http, settings.signer_url, settings.signer_api_key, timeout=settings.upstream_timeout
        )
    return PassThroughSigner()
