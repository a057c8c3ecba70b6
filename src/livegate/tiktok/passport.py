"""TikTok's web QR-code login ("passport"), against the real hosts from `Settings`.

The flow (tiktok-protocol.md §1): a warm-up page load seeds the CSRF/ttwid cookies,
`get_qrcode` hands out a token and the URL the QR must encode, and `check_qrconnect` is polled
until the user confirms in the TikTok app; the confirmed answer carries the session cookies.

Everything a later poll needs lives in a JSON-able `state` dict the caller stores between polls.
Cookies are kept in that per-login jar and sent as an explicit `Cookie` header; the shared
upstream client keeps none (tiktok/http.py).
"""

from __future__ import annotations

import json
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import structlog

from livegate import metrics
from livegate.config import Settings
from livegate.tiktok.answers import as_int
from livegate.tiktok.cookies import cookie_header, parse_set_cookie
from livegate.tiktok.errors import (
    UpstreamBlocked,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from livegate.tiktok.http import DEFAULT_USER_AGENT, Answer, Upstream
from livegate.tiktok.profile import (
    ACCOUNT_INFO_PARAMS,
    LANGUAGE,
    PASSPORT_AID,
    TikTokProfile,
    apply_user_detail,
    passport_data,
    profile_from_account_info,
    user_detail_params,
)

log = structlog.get_logger(__name__)

SDK_VERSION = "2.1.12-tiktok"

SLOW_DOWN_SECONDS = 120.0
ERROR_TOO_FAST = 7
VERIFY_ERROR_CODES = frozenset({2046, 2135})
VERIFY_HEADER = "x-tt-verify-idv-decision-conf"
MAX_REDIRECTS = 5

_STATUS_ALIASES = {
    "new": "new",
    "scanned": "scanned",
    "confirmed": "confirmed",
    "expired": "expired",
    "refused": "refused",
    "canceled": "refused",
    "cancelled": "refused",
    # Login Kit's name for an already-consumed code; for us the QR is simply over.
    "utilised": "expired",
}


@dataclass
class QRCode:
    token: str
    qrcode_index_url: str  # what the QR must encode
    expire_time: int  # unix seconds, from get_qrcode (never hard-coded)


@dataclass
class QRPoll:
    # "new" | "scanned" | "confirmed" | "expired" | "refused" | "verify" | "slow_down"
    status: str
    retry_after: float | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    redirect_url: str | None = None
    error_code: int | None = None
    verify_ticket: str | None = None


class _Unreachable(UpstreamError):
    """The host could not be reached at all; another passport host may still answer."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def _new_device_id() -> str:
    # Web device ids are 19 digits and, in every sample seen, start with 7.
    return "7" + "".join(secrets.choice(string.digits) for _ in range(18))


def _new_verify_fp() -> str:
    # Same layout as the web SDK's s_v_web_id: verify_<base36 ms>_<8>_<4>_<4>_<4>_<12>.
    alphabet = string.ascii_letters + string.digits
    ms = int(time.time() * 1000)
    b36 = ""
    while ms:
        ms, rem = divmod(ms, 36)
        b36 = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + b36
    groups = ["".join(secrets.choice(alphabet) for _ in range(n)) for n in (8, 4, 4, 4, 12)]
    return "verify_" + b36 + "_" + "_".join(groups)


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _find_key(obj: Any, key: str, depth: int = 0) -> str | None:
    if depth > 4:
        return None
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
        for sub in obj.values():
            found = _find_key(sub, key, depth + 1)
            if found:
                return found
    elif isinstance(obj, str) and obj[:1] in "{[":
        # The header's JSON sometimes nests further JSON as strings.
        try:
            return _find_key(json.loads(obj), key, depth + 1)
        except ValueError:
            return None
    return None


def _verify_ticket(resp: Answer) -> str | None:
    raw = resp.headers.get(VERIFY_HEADER)
    if not raw:
        return None
    try:
        return _find_key(json.loads(raw), "passport_ticket")
    except ValueError:
        return None


class PassportClient:
    def __init__(self, http: Upstream, settings: Settings) -> None:
        self._http = http
        self._settings = settings

    # ---- public API -------------------------------------------------------------------

    async def start(self) -> tuple[dict[str, Any], QRCode]:
        """Warm up a fresh browser-like identity and get the first QR code."""
        verify_fp = _new_verify_fp()
        state: dict[str, Any] = {
            # The web SDK writes s_v_web_id itself (document.cookie); it doubles as verifyFp.
            "cookies": {"s_v_web_id": verify_fp},
            "device_id": _new_device_id(),
            "verify_fp": verify_fp,
            "host_index": 0,
            "user_agent": DEFAULT_USER_AGENT,
        }
        await self._warm_up(state)
        qr = await self._get_qrcode(state)
        return state, qr

    async def new_qr(self, state: dict[str, Any]) -> QRCode:
        """A fresh QR code for the same identity (after "expired")."""
        if not self._jar(state).get("passport_csrf_token"):
            await self._warm_up(state)
        return await self._get_qrcode(state)

    async def poll(self, state: dict[str, Any], token: str) -> QRPoll:
        """One check_qrconnect round, trying the passport hosts in turn."""
        hosts = self._settings.passport_urls or [self._settings.www_url]
        start = as_int(state.get("host_index")) or 0
        start %= len(hosts)
        # A single host gets one retry so a lone transient 5xx doesn't cost a poll.
        attempts = len(hosts) if len(hosts) > 1 else 2
        params = {**self._base_params(state), "token": token}
        last: UpstreamError = UpstreamError("passport: no host answered")
        for i in range(attempts):
            idx = (start + i) % len(hosts)
            url = f"{hosts[idx]}/passport/web/check_qrconnect/"
            try:
                resp = await self._send(
                    state, "GET", url, params=params, passport=True, fallback=True
                )
            except _Unreachable as exc:
                log.info("passport_host_unreachable", host_index=idx)
                last = exc
                continue
            except UpstreamTimeout:
                # Waiting on every host in one poll would outlast the browser's poll; start
                # the next poll on the next host instead.
                state["host_index"] = (idx + 1) % len(hosts)
                raise
            if resp.status >= 500:
                log.info("passport_host_error", host_index=idx, status=resp.status)
                last = UpstreamError(f"passport answered HTTP {resp.status}")
                continue
            state["host_index"] = idx
            return await self._interpret_poll(state, resp)
        state["host_index"] = (start + 1) % len(hosts)
        if isinstance(last, _Unreachable) and last.timed_out:
            raise UpstreamTimeout(last.message)
        raise UpstreamError(last.message)

    async def fetch_profile(self, cookies: dict[str, str]) -> TikTokProfile:
        """The signed-in account behind `cookies`. Raises SessionExpired when not signed in."""
        jar = dict(cookies)
        url = f"{self._settings.www_url}/passport/web/account/info/"
        resp = await self._send({"cookies": jar}, "GET", url, params=ACCOUNT_INFO_PARAMS)
        profile = profile_from_account_info(resp, jar)
        if profile.unique_id:
            await self._enrich_profile(profile, jar)
        if not profile.nickname:
            profile.nickname = profile.unique_id
        return profile

    # ---- steps ------------------------------------------------------------------------

    async def _warm_up(self, state: dict[str, Any]) -> None:
        url = f"{self._settings.www_url}/login/qrcode"
        resp = await self._get_following(state, url, accept="text/html,application/xhtml+xml")
        if resp.status >= 400:
            raise UpstreamError(f"login page answered HTTP {resp.status}")

    async def _get_qrcode(self, state: dict[str, Any]) -> QRCode:
        url = f"{self._settings.www_url}/passport/web/get_qrcode/"
        resp = await self._send(state, "GET", url, params=self._base_params(state), passport=True)
        if resp.status >= 400:
            raise UpstreamError(f"get_qrcode answered HTTP {resp.status}")
        message, data, code = passport_data(resp, "get_qrcode")
        if message != "success" or (code is not None and code != 0):
            raise UpstreamError(f"get_qrcode: error_code {code}")
        token = data.get("token")
        index_url = data.get("qrcode_index_url")
        expire_time = as_int(data.get("expire_time"))
        if not isinstance(token, str) or not token or not isinstance(index_url, str):
            raise UpstreamError("get_qrcode: no token or qrcode_index_url")
        if not index_url or expire_time is None:
            raise UpstreamError("get_qrcode: no qrcode_index_url or expire_time")
        ticket = data.get("ttwid_migration_ticket")
        if isinstance(ticket, str) and ticket:
            state["ttwid_migration_ticket"] = ticket
        return QRCode(token=token, qrcode_index_url=index_url, expire_time=expire_time)

    async def _interpret_poll(self, state: dict[str, Any], resp: Answer) -> QRPoll:
        if resp.status == 429:
            retry = as_int(resp.headers.get("retry-after"))
            return QRPoll(
                status="slow_down",
                retry_after=float(retry) if retry and retry > 0 else SLOW_DOWN_SECONDS,
            )
        if resp.status >= 400:
            raise UpstreamError(f"check_qrconnect answered HTTP {resp.status}")
        message, data, code = passport_data(resp, "check_qrconnect")
        if message == "error" or (code is not None and code != 0):
            if code == ERROR_TOO_FAST:
                return QRPoll(status="slow_down", retry_after=SLOW_DOWN_SECONDS, error_code=code)
            if code in VERIFY_ERROR_CODES:
                return QRPoll(status="verify", error_code=code, verify_ticket=_verify_ticket(resp))
            raise UpstreamError(f"check_qrconnect: error_code {code}")
        status = _STATUS_ALIASES.get(str(data.get("status") or "").lower())
        if status is None:
            raise UpstreamError("check_qrconnect: unknown status")
        if status != "confirmed":
            return QRPoll(status=status)
        redirect = data.get("redirect_url") or data.get("auth_next") or data.get("target")
        redirect_url = redirect if isinstance(redirect, str) and redirect else None
        if redirect_url:
            await self._follow_redirect_url(state, redirect_url)
        return QRPoll(status="confirmed", cookies=dict(self._jar(state)), redirect_url=redirect_url)

    async def _follow_redirect_url(self, state: dict[str, Any], url: str) -> None:
        """Visit the post-login URL (and a `next_url` inside it) to pick up more cookies.

        The session cookies already came with the confirmed poll, so a failure here costs
        only optional cookies and must not fail the login.
        """
        targets = [url]
        for nxt in parse_qs(urlsplit(url).query).get("next_url", [])[:1]:
            targets.append(urljoin(url, nxt))
        for target in targets:
            if not self._allowed(target):
                log.info("passport_redirect_skipped", reason="not a configured TikTok base URL")
                continue
            try:
                await self._get_following(state, target, accept="text/html,application/xhtml+xml")
            except UpstreamError as exc:
                log.info("passport_redirect_failed", error=exc.code)

    async def _enrich_profile(self, profile: TikTokProfile, jar: dict[str, str]) -> None:
        """Fill secUid, region, room and privacy from /api/user/detail/ when it answers.

        Unsigned requests to that endpoint are often answered with an empty body, so it is
        best effort: account info alone already identifies the account.
        """
        url = f"{self._settings.www_url}/api/user/detail/"
        params = user_detail_params(profile.unique_id, jar)
        try:
            resp = await self._send({"cookies": jar}, "GET", url, params=params)
            apply_user_detail(profile, resp)
        except UpstreamError as exc:
            log.info("profile_detail_unavailable", error=exc.code)

    # ---- plumbing ---------------------------------------------------------------------

    def _jar(self, state: dict[str, Any]) -> dict[str, str]:
        jar = state.get("cookies")
        if not isinstance(jar, dict):
            jar = {}
            state["cookies"] = jar
        return jar

    def _base_params(self, state: dict[str, Any]) -> dict[str, str]:
        jar = self._jar(state)
        params = {
            "next": self._settings.www_url,
            "aid": PASSPORT_AID,
            "account_sdk_source": "web",
            "sdk_version": SDK_VERSION,
            "multi_login": "1",
            "device_platform": "web_pc",
            "did": str(state.get("device_id") or ""),
            "language": LANGUAGE,
            "locale": LANGUAGE,
            "app_language": LANGUAGE,
            "verifyFp": str(state.get("verify_fp") or jar.get("s_v_web_id") or ""),
        }
        if jar.get("msToken"):
            params["msToken"] = jar["msToken"]
        return {k: v for k, v in params.items() if v}

    def _allowed(self, url: str) -> bool:
        origin = _origin(url)
        if origin is None:
            return False
        s = self._settings
        bases = [s.www_url, s.webcast_url, *s.passport_urls]
        return origin in {_origin(b) for b in bases}

    async def _get_following(self, state: dict[str, Any], url: str, *, accept: str) -> Answer:
        """GET, following redirects by hand so cookies from every hop land in the jar."""
        resp = await self._send(state, "GET", url, accept=accept)
        for _ in range(MAX_REDIRECTS):
            location = resp.headers.get("location")
            if not resp.is_redirect or not location:
                break
            nxt = urljoin(resp.url, location)
            if not self._allowed(nxt):
                break
            resp = await self._send(state, "GET", nxt, accept=accept)
        return resp

    async def _send(
        self,
        state: dict[str, Any],
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        passport: bool = False,
        accept: str = "application/json, text/plain, */*",
        fallback: bool = False,
    ) -> Answer:
        """One request with the jar's cookies; Set-Cookie answers go back into the jar.

        With `fallback`, an unreachable host raises `_Unreachable` so the caller can try the
        next one; otherwise it becomes the public UpstreamTimeout/UpstreamError.
        """
        jar = self._jar(state)
        headers = {"Accept": accept, "Referer": f"{self._settings.www_url}/login/qrcode"}
        if jar:
            headers["Cookie"] = cookie_header(jar)
        if passport:
            if jar.get("passport_csrf_token"):
                headers["x-tt-passport-csrf-token"] = jar["passport_csrf_token"]
            ticket = state.get("ttwid_migration_ticket")
            if isinstance(ticket, str) and ticket:
                headers["x-tt-passport-ttwid-ticket"] = ticket
        host = urlsplit(url).hostname
        try:
            with metrics.counting_upstream("passport" + urlsplit(url).path):
                resp = await self._http.send(method, url, params=params, headers=headers)
        except UpstreamUnreachable as exc:
            if fallback:
                raise _Unreachable(exc.message, exc.timed_out) from None
            raise (UpstreamTimeout if exc.timed_out else UpstreamError)(exc.message) from None
        self._absorb_cookies(resp, jar)
        if resp.status == 403:
            raise UpstreamBlocked(f"{host} answered HTTP 403")
        return resp

    def _absorb_cookies(self, resp: Answer, jar: dict[str, str]) -> None:
        # Into this login's own jar only: the shared client keeps no cookie (tiktok/http.py).
        for header in resp.header_list("set-cookie"):
            parsed = parse_set_cookie(header)
            if parsed is None:
                continue
            name, value, deleted = parsed
            if deleted:
                jar.pop(name, None)
            else:
                jar[name] = value
        ms_token = resp.headers.get("x-ms-token")
        if ms_token:
            jar["msToken"] = ms_token
