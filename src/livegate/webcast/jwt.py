"""Browser tokens for the event stream (`POST /webcast/jwt`, `jwtKey` on `GET /webcast/events`).

An app's backend asks for one with its API key (and, to act as a user, that user's access
token); its page hands it to the browser, which opens the stream with it. The token is a JWT
(HS256, joserfc) signed with a key derived from livegate's server key by HKDF with its own
label, so every instance of a fleet verifies what any other issued, and rotating the server
key (`LIVEGATE_SECRET_KEYS`, newest first) keeps older tokens verifiable while they live.

It names what it allows, never a credential: the creators it may open (unique ids), the most
sockets it may hold at once, the app (its API key's id) and, for a user, the grant and the
access token row it was issued from (ids). A user's TikTok session is opened with a one-off
secret (`sk`) that only this token carries, through a vault wrapping made at issue time that
dies with the token (webcast/browser_tokens.py): a database dump or the server key alone
opens nothing, as for every other app secret. Claim names are short: the whole token must fit
the query string the Euler SDK builds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from livegate.config import Settings
from livegate.vault import key_id

__all__ = [
    "AUDIENCE",
    "DEFAULT_TTL",
    "MAX_TTL",
    "EventsJwtClaims",
    "EventsJwtError",
    "issue_events_jwt",
    "normalize_creator",
    "verify_events_jwt",
]

AUDIENCE = "livegate:webcast/events"
ALGORITHM = "HS256"
DEFAULT_TTL = 60  # seconds to open a stream with it
MAX_TTL = 3600
LEEWAY = 5  # seconds of clock difference between the instances of a fleet
_LABEL = b"livegate-events-jwt-v1"


class EventsJwtError(Exception):
    """The token is not one this livegate issued, or no longer valid: `str(exc)` says why
    (never echoing the token)."""


@dataclass(frozen=True)
class EventsJwtClaims:
    jti: str  # the token's own id: its open sockets are counted under it
    creators: tuple[str, ...]  # normalized unique ids (normalize_creator)
    max_sockets: int
    api_key_id: int  # the app's API key that asked for it
    issued_at: int
    expires_at: int
    grant_id: int | None = None  # act as this user's grant ...
    access_token_id: int | None = None  # ... issued from this access token (its row id)
    session_secret: str | None = field(default=None, repr=False)  # opens the grant's session

    def grants(self, unique_id: str) -> bool:
        """Whether the token may open `unique_id`'s stream."""
        return normalize_creator(unique_id) in self.creators

    @property
    def acts_as_user(self) -> bool:
        return self.grant_id is not None


def normalize_creator(unique_id: str) -> str:
    """A unique id as TikTok compares them: no '@', no blanks, lower case."""
    return unique_id.strip().lstrip("@").lower()


def _signing_key(server_key: bytes) -> OctKey:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(server_key)
    # kid: the server key's public id (as the vault's wrappings name it), to pick the key.
    return OctKey.import_key(derived, {"kid": key_id(server_key), "alg": ALGORITHM})


def _server_keys(settings_or_key: Settings | bytes | Sequence[bytes]) -> list[bytes]:
    if isinstance(settings_or_key, Settings):
        return list(settings_or_key.server_keys)
    if isinstance(settings_or_key, bytes):
        return [settings_or_key]
    return list(settings_or_key)


def issue_events_jwt(
    settings_or_key: Settings | bytes | Sequence[bytes],
    *,
    creators: Sequence[str],
    max_sockets: int,
    api_key_id: int,
    ttl: int = DEFAULT_TTL,
    grant_id: int | None = None,
    access_token_id: int | None = None,
    session_secret: str | None = None,
    now: int | None = None,
) -> tuple[str, EventsJwtClaims]:
    """A signed token and its claims, under the newest server key. `ttl` is capped at MAX_TTL."""
    if not creators:
        raise ValueError("a token names at least one creator")
    if (grant_id is None) != (session_secret is None) or (grant_id is None) != (
        access_token_id is None
    ):
        raise ValueError("a grant comes with its access token id and session secret")
    issued = int(time.time()) if now is None else now
    claims = EventsJwtClaims(
        jti=secrets.token_urlsafe(12),
        creators=tuple(dict.fromkeys(normalize_creator(c) for c in creators)),
        max_sockets=max_sockets,
        api_key_id=api_key_id,
        issued_at=issued,
        expires_at=issued + max(1, min(ttl, MAX_TTL)),
        grant_id=grant_id,
        access_token_id=access_token_id,
        session_secret=session_secret,
    )
    payload: dict[str, Any] = {
        "aud": AUDIENCE,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": claims.jti,
        "cr": list(claims.creators),
        "ms": claims.max_sockets,
        "key": claims.api_key_id,
    }
    if grant_id is not None:
        payload.update({"grant": grant_id, "tok": access_token_id, "sk": session_secret})
    key = _signing_key(_server_keys(settings_or_key)[0])
    token = jwt.encode({"alg": ALGORITHM, "kid": key.kid}, payload, key, algorithms=[ALGORITHM])
    return token, claims


_REGISTRY = jwt.JWTClaimsRegistry(
    leeway=LEEWAY,
    aud={"essential": True, "value": AUDIENCE},
    exp={"essential": True},
    iat={"essential": True},
    jti={"essential": True},
)


def verify_events_jwt(
    settings_or_key: Settings | bytes | Sequence[bytes], token: str
) -> EventsJwtClaims:
    """The claims of a token this livegate (any instance, any configured server key) issued
    and that has not expired; EventsJwtError otherwise."""
    keys = KeySet([_signing_key(k) for k in _server_keys(settings_or_key)])
    try:
        decoded = jwt.decode(token, keys, algorithms=[ALGORITHM])
        _REGISTRY.validate(decoded.claims)
    except JoseError as exc:
        raise EventsJwtError(_why(exc)) from None
    except (ValueError, TypeError):  # not a JWT at all, or a kid no key has
        raise EventsJwtError("not a livegate event-stream token") from None
    return _claims(decoded.claims)


def _why(exc: JoseError) -> str:
    name = type(exc).__name__
    if name == "ExpiredTokenError":
        return "the token has expired: ask the app's backend for a new one"
    if name == "BadSignatureError":
        return "the token's signature does not verify: it was not issued here"
    return "not a livegate event-stream token"


def _claims(c: dict[str, Any]) -> EventsJwtClaims:
    """Typed claims; a signed token with claims of the wrong shape is refused all the same."""
    try:
        iat, exp = int(c["iat"]), int(c["exp"])
        creators = c["cr"]
        if not isinstance(creators, list) or not all(isinstance(x, str) for x in creators):
            raise TypeError("cr")
        if exp - iat > MAX_TTL:
            raise EventsJwtError("the token lives longer than livegate allows")
        grant = c.get("grant")
        return EventsJwtClaims(
            jti=str(c["jti"]),
            creators=tuple(creators),
            max_sockets=int(c["ms"]),
            api_key_id=int(c["key"]),
            issued_at=iat,
            expires_at=exp,
            grant_id=None if grant is None else int(grant),
            access_token_id=None if grant is None else int(c["tok"]),
            session_secret=None if grant is None else str(c["sk"]),
        )
    except (KeyError, TypeError, ValueError):
        raise EventsJwtError("not a livegate event-stream token") from None
