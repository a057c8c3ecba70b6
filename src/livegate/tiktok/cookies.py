"""TikTok cookie-jar helpers: which cookies make a session, and when it runs out.

A jar is a plain `dict[str, str]` of cookie name to the raw value exactly as TikTok set it
(URL-encoded where TikTok encodes it), so it can be stored as JSON and sent back unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus

# The cookies that identify a signed-in TikTok user: never handed to anyone but TikTok.
IDENTITY_COOKIE_NAMES: frozenset[str] = frozenset(
    {
        "sessionid",
        "sessionid_ss",
        "sid_tt",
        "sid_guard",
        "uid_tt",
        "uid_tt_ss",
        "sid_ucp_v1",
        "ssid_ucp_v1",
        "odin_tt",
        "cmpl_token",
        "multi_sids",
        "passport_auth_status",
        "passport_auth_status_ss",
        "store-idc",
        "store-country-code",
        "tt-target-idc",
        "tt-target-idc-sign",
    }
)

# What a signed-in web session is made of, plus the warm-up cookies the webcast WebSocket
# handshake and signed requests need later (tiktok-protocol.md §1.2).
SESSION_COOKIE_NAMES: frozenset[str] = IDENTITY_COOKIE_NAMES | {
    "store-country-code-src",
    "last_login_method",
    "ttwid",
    "msToken",
    "tt_csrf_token",
    "passport_csrf_token",
    "passport_csrf_token_default",
    "s_v_web_id",
    "tt_chain_token",
}

# Without both, TikTok (and every client library) treats the request as anonymous.
LOGIN_COOKIE_NAMES: tuple[str, ...] = ("sessionid", "tt-target-idc")

# Bounds a sane sid_guard max-age; anything outside is a garbled value, not a session.
_MAX_SESSION_AGE = 10 * 365 * 24 * 3600


def parse_sid_guard(value: str) -> datetime | None:
    """Expiry (aware, UTC) from `<sessionid>|<issued ts>|<max-age s>|<expiry HTTP date>`.

    TikTok URL-encodes the value in Set-Cookie (`%7C`, `+`), so both forms are accepted. The
    issued time plus max-age is preferred because it does not depend on date-string parsing;
    the HTTP date is the fallback. Anything malformed gives None.
    """
    if not isinstance(value, str) or not value:
        return None
    text = unquote_plus(value.strip().strip('"'))
    parts = text.split("|")
    if len(parts) != 4 or not parts[0]:
        return None
    _, issued_s, max_age_s, http_date = parts
    try:
        issued = int(issued_s)
        max_age = int(max_age_s)
    except ValueError:
        issued = max_age = -1
    if issued > 0 and 0 < max_age <= _MAX_SESSION_AGE:
        try:
            return datetime.fromtimestamp(issued + max_age, tz=UTC)
        except (OverflowError, OSError, ValueError):
            pass
    try:
        parsed = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def session_expiry(jar: Mapping[str, str]) -> datetime | None:
    """When the jar's session runs out, from its sid_guard; None when unknown."""
    guard = jar.get("sid_guard")
    return parse_sid_guard(guard) if guard else None


def session_expired(jar: Mapping[str, str], now: datetime | None = None) -> bool:
    """True only when sid_guard says the session is past its expiry."""
    expiry = session_expiry(jar)
    if expiry is None:
        return False
    return expiry <= (now or datetime.now(UTC))


# RFC 6265 cookie-octets: no whitespace, quote, comma, semicolon or backslash.
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")


def plain_cookie_value(value: str) -> bool:
    """Whether `value` is a non-empty RFC 6265 cookie value, sendable as is in any Cookie header."""
    return _COOKIE_OCTETS.fullmatch(value) is not None


_BAD_NAME = re.compile(r"[=;, \t\r\n]")  # in a cookie name
_BAD_VALUE = re.compile(r"[;\r\n]")  # in a value


def cookie_header(jar: Mapping[str, str]) -> str:
    """A `Cookie:` header value; empty names/values and header-breaking characters are dropped.

    Jars hold what TikTok set and what callers send (`x-cookie-header`, `session_id`): a `;`
    in a value must not smuggle in another cookie, nor a newline another header.
    """
    return "; ".join(
        f"{name}={value}"
        for name, value in jar.items()
        if name and value and not _BAD_NAME.search(name) and not _BAD_VALUE.search(value)
    )


def has_login_cookie(jar: Mapping[str, str]) -> bool:
    """Whether the jar can sign a webcast request in as a user (sessionid + tt-target-idc)."""
    return all(jar.get(name) for name in LOGIN_COOKIE_NAMES)


def keep_session_cookies(jar: Mapping[str, str]) -> dict[str, str]:
    """The subset of a jar worth storing: session, region and warm-up cookies."""
    return {k: v for k, v in jar.items() if k in SESSION_COOKIE_NAMES and v}


def parse_set_cookie(header: str) -> tuple[str, str, bool] | None:
    """(name, value exactly as sent, whether the header deletes the cookie) of one Set-Cookie
    header: an empty value, a Max-Age of zero or less, or an Expires in the past delete it."""
    first, _, attrs = header.partition(";")
    name, sep, value = first.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        return None
    deleted = value == ""
    for attr in attrs.split(";"):
        key, _, val = attr.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age":
            with contextlib.suppress(ValueError):
                deleted = deleted or int(val.strip()) <= 0
        elif key == "expires":
            deleted = deleted or _in_the_past(val.strip())
    return name, value, deleted


def _in_the_past(http_date: str) -> bool:
    try:
        expires = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return False
    return expires.tzinfo is not None and expires < datetime.now(UTC)


def cookie_pair(set_cookie: str) -> tuple[str, str] | None:
    """(name, value) of one Set-Cookie header, the value without its quotes if it has any."""
    parsed = parse_set_cookie(set_cookie)
    if parsed is None:
        return None
    name, value, _ = parsed
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return name, value
