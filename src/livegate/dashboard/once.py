"""A secret shown once, on the page a POST redirects to (POST-redirect-GET).

A new client's secret, a rotated secret and a new API key are shown on the page the POST
redirects to, and only on that first GET: a refresh shows nothing again and changes nothing.
The secret travels in a cookie sealed with AES-GCM under HKDF(server key || the browser's
session token) (`Vault.seal`), bound to the page's path, valid for a minute and deleted by the
page that shows it. So it is never in a URL nor in the database, any gateway process can open
it, and the cookie alone, the server key alone, or the cookie in another session, opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass

from livegate.vault import Vault, VaultError

COOKIE = "lg_once"
KIND = "dashboard-once"
TTL = 60


@dataclass(frozen=True)
class Shown:
    """What the page shows once: the secret, and the message above it (a STRINGS key)."""

    secret: str
    flash: str


def seal(vault: Vault, session_token: str, path: str, shown: Shown) -> str:
    """The cookie value that carries `shown` to the page at `path`."""
    plain = json.dumps(
        {"secret": shown.secret, "flash": shown.flash, "exp": int(time.time()) + TTL}
    ).encode()
    blob = vault.seal(session_token, KIND, plain, path.encode())
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def unseal(vault: Vault, session_token: str | None, path: str, value: str | None) -> Shown | None:
    """What the cookie carries to this page, or None: absent, expired, for another page or
    another session, or not sealed by livegate."""
    if not value or not session_token:
        return None
    try:
        blob = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(vault.unseal(session_token, KIND, blob, path.encode()))
    except (binascii.Error, ValueError, VaultError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
        return None
    if data["exp"] < time.time():
        return None
    secret, flash = data.get("secret"), data.get("flash")
    if not isinstance(secret, str) or not isinstance(flash, str):
        return None
    return Shown(secret, flash)
