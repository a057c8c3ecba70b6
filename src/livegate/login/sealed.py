"""What a pending sign-in keeps that TikTok would honour, sealed; and what its binding derives.

The browser that starts a sign-in gets a random binding secret in a cookie, and the row keeps
only its SHA-256 digest. The pages' CSRF token and, once the user confirms, the authorization
code are derived from the binding, so neither is stored. The passport state (warm-up cookies,
device identity), the QR token and URL (with the warm-up cookies they poll TikTok for the
session) and the confirmed cookie jar are sealed with AES-GCM under HKDF(server key ||
binding) (`Vault.seal`): a dump alone, or the server key alone, opens nothing, while whichever
gateway process receives the browser's next request can open it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from livegate.secrets import CODE_PREFIX
from livegate.vault import Vault, VaultError

KIND = "login"


@dataclass
class LoginSecrets:
    # PassportClient's state between polls: warm-up cookies, device id, host index.
    passport: dict[str, Any] = field(default_factory=dict)
    qr_token: str | None = None
    qr_url: str | None = None
    # The confirmed session, kept only while the profile read is retried.
    jar: dict[str, str] | None = None


def new_binding() -> str:
    return secrets.token_urlsafe(32)


def _derive(binding: str, label: str) -> str:
    mac = hmac.new(binding.encode(), label.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_token(binding: str) -> str:
    """The sign-in pages' CSRF token: only the binding's holder can compute it."""
    return _derive(binding, "csrf")


def authorization_code(binding: str, login_id: str) -> str:
    """The code this sign-in issues: as unguessable as a random one, and never stored."""
    return CODE_PREFIX + _derive(binding, "code:" + login_id)


def seal(vault: Vault, binding: str, login_id: str, held: LoginSecrets) -> bytes:
    plain = json.dumps(dataclasses.asdict(held)).encode()
    # The login id as associated data: a blob copied onto another row does not open there.
    return vault.seal(binding, KIND, plain, login_id.encode())


def open_sealed(vault: Vault, binding: str, login_id: str, blob: bytes | None) -> LoginSecrets:
    """The sealed part of a sign-in (empty when nothing was sealed); VaultError if it won't open."""
    if not blob:
        return LoginSecrets()
    data = json.loads(vault.unseal(binding, KIND, blob, login_id.encode()))
    if not isinstance(data, dict):
        raise VaultError("sealed sign-in is not an object")
    return LoginSecrets(
        passport=dict(data.get("passport") or {}),
        qr_token=data.get("qr_token"),
        qr_url=data.get("qr_url"),
        jar=data.get("jar"),
    )
