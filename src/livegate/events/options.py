"""The event stream's options, from the query the Euler WebSocket SDK 0.0.6 builds
(`createWebSocketUrl`): `uniqueId`, `apiKey` | `jwtKey`, and `features.*` flattened with dots,
booleans as `true|false|1|0`, numbers within the SDK's bounds; plus livegate's `format`
(`binary`, TikTok's push frames, the default; or `json`). Anything else is ignored, as the SDK's
schema strips unknown keys; a value out of bounds is `INVALID_OPTIONS` (4400).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from livegate.events.codes import CloseCode, Closing

BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
FORMATS = ("binary", "json")
SCHEMA_VERSIONS = ("v1", "v2")
MAX_VALUE = 512  # characters in any one option but jwtKey
MAX_JWT = 2048  # a browser token naming its most creators (POST /webcast/jwt) fits
_UNIQUE_ID_RE = re.compile(r"^[A-Za-z0-9._]{1,64}$")
_LIVE_URL_PREFIX = "https://www.tiktok.com/"


@dataclass(frozen=True)
class Features:
    bundle_events: bool = True
    raw_messages: bool = False
    normalize_unique_id: bool = True
    synthetic_presence: bool = False
    synthetic_presence_leave_after: int = 300
    close_inactive_after: int = 60
    schema_version: str = "v2"
    include_raw_bytes: bool = False


@dataclass(frozen=True)
class StreamOptions:
    unique_id: str
    api_key: str | None
    jwt_key: str | None
    format: str  # "binary" | "json"
    features: Features

    @property
    def json(self) -> bool:
        return self.format == "json"


# query key: (Features field, kind, bounds)
_FEATURES: dict[str, tuple[str, str, tuple[int, int] | None]] = {
    "features.bundleEvents": ("bundle_events", "bool", None),
    "features.rawMessages": ("raw_messages", "bool", None),
    "features.normalizeUniqueId": ("normalize_unique_id", "bool", None),
    "features.syntheticPresence": ("synthetic_presence", "bool", None),
    "features.syntheticPresenceLeaveAfter": ("synthetic_presence_leave_after", "int", (60, 3600)),
    "features.closeInactiveWebSocketAfter": ("close_inactive_after", "int", (30, 3600)),
    "features.schemaVersion": ("schema_version", "version", None),
    "features.includeRawBytes": ("include_raw_bytes", "bool", None),
    "features.useEnterpriseApi": ("", "bool", None),  # Euler's own infrastructure: no meaning here
}


def _bad(what: str) -> Closing:
    return Closing(CloseCode.INVALID_OPTIONS, what)


def _value(key: str, kind: str, raw: str, bounds: tuple[int, int] | None) -> bool | int | str:
    if kind == "bool":
        if raw not in BOOLEANS:
            raise _bad(f"{key} must be true, false, 1 or 0")
        return BOOLEANS[raw]
    if kind == "version":
        if raw not in SCHEMA_VERSIONS:
            raise _bad(f"{key} must be v1 or v2")
        return raw
    try:
        number = float(raw)
    except ValueError:
        raise _bad(f"{key} must be a number") from None
    low, high = bounds or (0, 0)
    if not low <= number <= high:
        raise _bad(f"{key} must be between {low} and {high}")
    return int(number)


def normalize_unique_id(unique_id: str) -> str:
    """What the SDK's `normalizeUniqueId` does: a live URL or `@name` becomes `name`."""
    unique_id = unique_id.replace(_LIVE_URL_PREFIX, "").replace("/live", "").replace("@", "")
    return unique_id.strip()


def parse_options(items: Iterable[tuple[str, str]]) -> StreamOptions:
    """The options in a query's (key, value) pairs; Closing(4400) when they are not usable."""
    seen: dict[str, str] = {}
    for key, value in items:
        if key in seen:
            raise _bad(f"{key} appears more than once")
        if len(value) > (MAX_JWT if key == "jwtKey" else MAX_VALUE):
            raise _bad(f"{key} is too long")
        seen[key] = value
    features: dict[str, bool | int | str] = {}
    for key, (name, kind, bounds) in _FEATURES.items():
        if key in seen:
            parsed = _value(key, kind, seen[key], bounds)
            if name:
                features[name] = parsed
    flags = Features(**features)  # type: ignore[arg-type]  # each value's type is its field's
    unique_id = seen.get("uniqueId", "")
    if flags.normalize_unique_id:
        unique_id = normalize_unique_id(unique_id)
    if not _UNIQUE_ID_RE.fullmatch(unique_id):
        raise _bad("uniqueId must name a TikTok user (letters, digits, . and _)")
    fmt = seen.get("format", "binary")
    if fmt not in FORMATS:
        raise _bad("format must be binary or json")
    if flags.raw_messages:
        fmt = "binary"  # the SDK's pass-through of TikTok's frames
    api_key = seen.get("apiKey") or None
    jwt_key = seen.get("jwtKey") or None
    if api_key and jwt_key:
        raise _bad("send apiKey or jwtKey, not both")
    return StreamOptions(unique_id, api_key, jwt_key, fmt, flags)
