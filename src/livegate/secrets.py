"""High-entropy credentials: prefixed for secret scanners, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

ACCESS_TOKEN_PREFIX = "lg_at_"  # noqa: S105  # a public prefix, not a secret
REFRESH_TOKEN_PREFIX = "lg_rt_"  # noqa: S105  # a public prefix, not a secret
CODE_PREFIX = "lg_ac_"
CLIENT_ID_PREFIX = "lgc_"
CLIENT_SECRET_PREFIX = "lg_cs_"  # noqa: S105  # a public prefix, not a secret
API_KEY_PREFIX = "lg_ak_"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


# Copied for each digest: `hashlib.sha256()` looks the algorithm up in OpenSSL on every call,
# and on a cold CPU that lookup costs more than the copy (docs/benchmarks.md, notes).
_SHA256 = hashlib.sha256()


def digest(value: str) -> str:
    """The stored form of a secret. Plain SHA-256 is enough: every secret has >=256 bits."""
    h = _SHA256.copy()
    h.update(value.encode())
    return h.hexdigest()


def digest_matches(value: str, stored: str | None) -> bool:
    if not stored:
        return False
    return hmac.compare_digest(digest(value), stored)
