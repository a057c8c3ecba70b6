"""Envelope encryption of TikTok cookie jars.

A jar is AES-GCM encrypted under a random per-grant data key. The data key is stored only
wrapped, once per live app secret (code, access token, refresh token); each wrapping key is
HKDF(server key || app secret). The database keeps only the secret's digest, so a dump alone
opens nothing, and the server key alone opens nothing either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from livegate.db.models import SessionKeyWrap, TikTokSession
from livegate.secrets import digest


class VaultError(Exception):
    """The secret presented cannot open this session (revoked, rotated, or wrong)."""


def key_id(server_key: bytes) -> str:
    return hashlib.sha256(b"livegate-key-id|" + server_key).hexdigest()[:16]


@dataclass(frozen=True)
class Vault:
    server_keys: list[bytes]  # newest first

    @property
    def current_key_id(self) -> str:
        return key_id(self.server_keys[0])

    def _server_key(self, kid: str) -> bytes:
        for key in self.server_keys:
            if key_id(key) == kid:
                return key
        raise VaultError("server key no longer configured")

    @staticmethod
    def _kek(server_key: bytes, secret: str, salt: bytes, kind: str) -> bytes:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=salt,
            info=b"livegate-wrap-v1|" + kind.encode(),
        )
        return hkdf.derive(server_key + b"\x00" + secret.encode())

    # -- sealing ----------------------------------------------------------------------------

    def seal(self, secret: str, kind: str, plaintext: bytes, aad: bytes) -> bytes:
        """AES-GCM under HKDF(newest server key || secret): salt, nonce and ciphertext.

        For short-lived state that the holder of `secret` brings back (a pending sign-in):
        neither the blob with the server key nor the blob with the secret opens it alone.
        """
        salt = os.urandom(16)
        nonce = os.urandom(12)
        kek = self._kek(self.server_keys[0], secret, salt, kind)
        return salt + nonce + AESGCM(kek).encrypt(nonce, plaintext, aad)

    def unseal(self, secret: str, kind: str, blob: bytes, aad: bytes) -> bytes:
        """Open a `seal` blob; every configured server key is tried, newest first."""
        if len(blob) < 16 + 12 + 16:
            raise VaultError("sealed data is truncated")
        salt, nonce, ciphertext = blob[:16], blob[16:28], blob[28:]
        for server_key in self.server_keys:
            kek = self._kek(server_key, secret, salt, kind)
            try:
                return AESGCM(kek).decrypt(nonce, ciphertext, aad)
            except InvalidTag:
                continue
        raise VaultError("sealed data does not open")

    # -- sessions ---------------------------------------------------------------------------

    def store_session(
        self,
        db: Session,
        grant_id: int,
        jar: dict[str, str],
        session_expires_at: dt.datetime | None,
    ) -> tuple[TikTokSession, bytes]:
        """Encrypt `jar` for the grant; returns the row and the data key (to wrap next)."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        ciphertext = AESGCM(data_key).encrypt(
            nonce, json.dumps(jar).encode(), f"grant:{grant_id}".encode()
        )
        row = TikTokSession(
            grant_id=grant_id,
            nonce=nonce,
            ciphertext=ciphertext,
            session_expires_at=session_expires_at,
        )
        db.add(row)
        db.flush()
        return row, data_key

    @staticmethod
    def decrypt_session(row: TikTokSession, data_key: bytes) -> dict[str, str]:
        return Vault.decrypt_jar(data_key, row.nonce, row.ciphertext, row.grant_id)

    @staticmethod
    def decrypt_jar(
        data_key: bytes, nonce: bytes, ciphertext: bytes, grant_id: int
    ) -> dict[str, str]:
        """A session's cookie jar from its stored columns (no ORM: the webcast API's per-call
        lookup reads them in its one query)."""
        try:
            plain = AESGCM(data_key).decrypt(nonce, ciphertext, f"grant:{grant_id}".encode())
        except InvalidTag as exc:
            raise VaultError("session does not decrypt") from exc
        jar: dict[str, str] = json.loads(plain)
        return jar

    # -- wrappings --------------------------------------------------------------------------

    def wrap(
        self,
        db: Session,
        session_id: int,
        data_key: bytes,
        secret: str,
        kind: str,
        expires_at: dt.datetime,
    ) -> None:
        db.add(SessionKeyWrap(**self.wrapping(session_id, data_key, secret, kind, expires_at)))

    def wrapping(
        self, session_id: int, data_key: bytes, secret: str, kind: str, expires_at: dt.datetime
    ) -> dict[str, Any]:
        """The columns of a new session_key_wraps row: `data_key` wrapped for `secret`."""
        salt = os.urandom(16)
        nonce = os.urandom(12)
        secret_digest = digest(secret)
        kek = self._kek(self.server_keys[0], secret, salt, kind)
        wrapped = AESGCM(kek).encrypt(nonce, data_key, secret_digest.encode())
        return {
            "session_id": session_id,
            "secret_kind": kind,
            "secret_digest": secret_digest,
            "server_key_id": self.current_key_id,
            "salt": salt,
            "nonce": nonce,
            "wrapped_key": wrapped,
            "expires_at": expires_at,
        }

    def unwrap(self, db: Session, secret: str) -> tuple[TikTokSession, bytes]:
        """The session row and its data key, opened with an app secret.

        A wrapping under an older server key moves to the newest one here, so rotation
        completes as tokens are used.
        """
        secret_digest = digest(secret)
        wrap = db.scalar(
            select(SessionKeyWrap).where(SessionKeyWrap.secret_digest == secret_digest)
        )
        if wrap is None:
            raise VaultError("no session for this secret")
        data_key = self.open_key(
            secret, wrap.secret_kind, wrap.server_key_id, wrap.salt, wrap.nonce, wrap.wrapped_key
        )
        if wrap.server_key_id != self.current_key_id:
            wrap.salt = os.urandom(16)
            wrap.nonce = os.urandom(12)
            new_kek = self._kek(self.server_keys[0], secret, wrap.salt, wrap.secret_kind)
            wrap.wrapped_key = AESGCM(new_kek).encrypt(wrap.nonce, data_key, secret_digest.encode())
            wrap.server_key_id = self.current_key_id
        row = db.get(TikTokSession, wrap.session_id)
        if row is None:
            raise VaultError("session gone")
        return row, data_key

    def open_key(
        self, secret: str, kind: str, server_key_id: str, salt: bytes, nonce: bytes, wrapped: bytes
    ) -> bytes:
        """A data key from its wrapping's stored columns, opened with the app secret."""
        kek = self._kek(self._server_key(server_key_id), secret, salt, kind)
        try:
            return AESGCM(kek).decrypt(nonce, wrapped, digest(secret).encode())
        except InvalidTag as exc:
            raise VaultError("wrapping does not open") from exc

    def open(self, db: Session, secret: str) -> dict[str, str]:
        row, data_key = self.unwrap(db, secret)
        return self.decrypt_session(row, data_key)

    @staticmethod
    def destroy_wraps(db: Session, secret_digests: list[str]) -> None:
        if secret_digests:
            db.execute(
                delete(SessionKeyWrap).where(SessionKeyWrap.secret_digest.in_(secret_digests))
            )

    def key_status(self, db: Session) -> list[tuple[str, int, bool]]:
        """(key id, wrappings depending on it, still configured) for every key in use."""
        counts = Counter(db.scalars(select(SessionKeyWrap.server_key_id)).all())
        configured = [key_id(k) for k in self.server_keys]
        rows = [(kid, counts.get(kid, 0), True) for kid in configured]
        rows += [(kid, n, False) for kid, n in counts.items() if kid not in configured]
        return rows
