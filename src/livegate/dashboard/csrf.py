"""CSRF tokens for every dashboard and account form: a signed double-submit token.

The browser holds a random `lg_csrf` cookie (HttpOnly, SameSite=Lax); each form carries
HMAC(server key, cookie value | session digest). A forged request has neither the cookie's
value nor the key, and a token from before sign-in stops working after it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "lg_csrf"
FIELD = "csrf_token"


class CsrfSigner:
    def __init__(self, server_key: bytes) -> None:
        self.key = hmac.new(server_key, b"livegate dashboard csrf", hashlib.sha256).digest()

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def token(self, cookie: str, session_digest: str = "") -> str:
        msg = f"{cookie}|{session_digest}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def check(self, cookie: str | None, session_digest: str, presented: str | None) -> bool:
        if not cookie or not presented:
            return False
        return hmac.compare_digest(self.token(cookie, session_digest), presented)
