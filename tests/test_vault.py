"""The session vault: what a database dump, a server key, a revocation and a rotation can do."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import (
    AccessToken,
    AuthorizationCode,
    PendingLogin,
    SessionKeyWrap,
    TikTokSession,
    utcnow,
)
from livegate.housekeeping import purge_all
from livegate.secrets import digest
from livegate.vault import Vault, VaultError, key_id
from tests.oauth_helpers import refresh, register, revoke, tokens_for
from tests.servers import ServerThread


def wrap_for(database: Database, secret: str) -> SessionKeyWrap | None:
    with database.session() as s:
        return s.scalar(
            select(SessionKeyWrap).where(SessionKeyWrap.secret_digest == digest(secret))
        )


def test_session_is_stored_encrypted_and_opens_only_with_the_app_secret(
    gateway: ServerThread, sim: ServerThread, database: Database, gateway_settings: Settings
) -> None:
    app = register(database)
    t = tokens_for(gateway.url, sim.url, app)
    vault = Vault(gateway_settings.server_keys)
    with database.session() as s:
        jar = vault.open(s, t["access_token"])
        assert jar["sessionid"] and jar["tt-target-idc"]
        wrap = s.scalar(
            select(SessionKeyWrap).where(SessionKeyWrap.secret_digest == digest(t["access_token"]))
        )
        assert wrap is not None
        row = s.get(TikTokSession, wrap.session_id)
        assert row is not None
        # The ciphertext does not contain the cookie in clear.
        assert jar["sessionid"].encode() not in row.ciphertext
        # A database dump has the digest, not the token: the digest derives a useless key.
        kek = Vault._kek(
            gateway_settings.server_keys[0], wrap.secret_digest, wrap.salt, wrap.secret_kind
        )
        with pytest.raises(InvalidTag):
            AESGCM(kek).decrypt(wrap.nonce, wrap.wrapped_key, wrap.secret_digest.encode())
        # The token with another server key opens nothing either.
        with pytest.raises(VaultError):
            Vault([b"another-server-key"]).open(s, t["access_token"])
        # The server key alone, without the app's token, finds nothing to open.
        with pytest.raises(VaultError):
            vault.open(s, wrap.secret_digest)


def test_tokens_are_stored_only_as_digests(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    t = tokens_for(gateway.url, sim.url, app)
    with database.session() as s:
        row = s.scalar(
            select(AccessToken).where(AccessToken.token_digest == digest(t["access_token"]))
        )
        assert row is not None
        dump = json.dumps([str(v) for v in row.__dict__.values()])
        assert t["access_token"] not in dump


def test_revocation_and_rotation_destroy_wrappings(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    t = tokens_for(gateway.url, sim.url, app)
    assert wrap_for(database, t["access_token"]) is not None
    r = refresh(gateway.url, app, t["refresh_token"])
    t2 = r.json()
    assert wrap_for(database, t["refresh_token"]) is None  # the rotated token opens nothing
    assert wrap_for(database, t2["refresh_token"]) is not None
    assert wrap_for(database, t2["access_token"]) is not None
    assert revoke(gateway.url, app, t2["refresh_token"]).status_code == 200
    assert wrap_for(database, t2["refresh_token"]) is None
    assert wrap_for(database, t2["access_token"]) is None


def test_server_key_rotation_moves_wrappings_on_use(
    gateway: ServerThread, sim: ServerThread, database: Database, gateway_settings: Settings
) -> None:
    app = register(database)
    t = tokens_for(gateway.url, sim.url, app)
    old = gateway_settings.server_keys
    new_key = b"a-brand-new-server-key-for-rotation"
    rotated = Vault([new_key, *old])
    with database.session() as s:
        before = dict((kid, n) for kid, n, _ in rotated.key_status(s))
        assert before[key_id(new_key)] == 0
        rotated.open(s, t["access_token"])
    wrap = wrap_for(database, t["access_token"])
    assert wrap is not None and wrap.server_key_id == key_id(new_key)
    with database.session() as s:
        after = dict((kid, n) for kid, n, _ in rotated.key_status(s))
        assert after[key_id(new_key)] == 1
        assert after[key_id(old[0])] == before[key_id(old[0])] - 1
        # With only the new key, the moved wrapping opens and an unmoved one does not.
        assert Vault([new_key]).open(s, t["access_token"])["sessionid"]
        with pytest.raises(VaultError):
            Vault([new_key]).open(s, t["refresh_token"])


def test_default_key_file_is_private(tmp_path: Path) -> None:
    keys = Settings(data_dir=tmp_path).server_keys
    path = tmp_path / "livegate.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys[0]) >= 32
    assert Settings(data_dir=tmp_path).server_keys == keys  # stable across restarts


def test_purge_removes_expired_rows_in_batches(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    tokens_for(gateway.url, sim.url, app)
    long_ago = utcnow() - dt.timedelta(days=2)
    with database.session() as s:
        client_pk = s.scalar(select(AccessToken.client_pk).order_by(AccessToken.id.desc()))
        grant_id = s.scalar(select(AccessToken.grant_id).order_by(AccessToken.id.desc()))
        assert client_pk and grant_id
        for i in range(5):
            s.add(
                AuthorizationCode(
                    code_digest=digest(f"old-code-{i}-{os.urandom(4).hex()}"),
                    client_pk=client_pk,
                    grant_id=grant_id,
                    redirect_uri="x",
                    scope="webcast:fetch",
                    expires_at=long_ago,
                )
            )
            s.add(
                PendingLogin(
                    id=f"old-{i}-{os.urandom(4).hex()}", binding_digest="x", expires_at=long_ago
                )
            )
    counts = purge_all(database, batch=2)
    assert counts["authorization_codes"] >= 5
    assert counts["pending_logins"] >= 5
    with database.session() as s:
        assert (
            s.scalar(
                select(AuthorizationCode).where(
                    AuthorizationCode.expires_at < utcnow() - dt.timedelta(hours=2)
                )
            )
            is None
        )


def run_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "livegate.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_clients_and_keys(tmp_path: Path) -> None:
    env = {
        "LIVEGATE_DATA_DIR": str(tmp_path),
        "LIVEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    r = run_cli(
        [
            "clients",
            "create",
            "--name",
            "CLI App",
            "--redirect-uri",
            "https://app.example/cb",
            "--redirect-uri",
            "http://localhost:3000/cb",
            "--scope",
            "webcast:fetch user:info",
            "--json",
        ],
        env,
    )
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert created["client_id"].startswith("lgc_")
    assert created["client_secret"].startswith("lg_cs_")
    assert created["redirect_uris"] == ["https://app.example/cb", "http://localhost:3000/cb"]
    listed = json.loads(run_cli(["clients", "list", "--json"], env).stdout)
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]
    rotated = json.loads(
        run_cli(["clients", "rotate-secret", created["client_id"], "--json"], env).stdout
    )
    assert rotated["client_secret"] != created["client_secret"]
    bad = run_cli(
        ["clients", "create", "--name", "X", "--redirect-uri", "http://evil.example/cb", "--json"],
        env,
    )
    assert bad.returncode == 2 and "https" in bad.stderr
    bad = run_cli(
        [
            "clients",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "https://a.example/cb",
            "--scope",
            "nope",
            "--json",
        ],
        env,
    )
    assert bad.returncode == 2 and "unknown scope" in bad.stderr
    status = json.loads(run_cli(["keys", "status", "--json"], env).stdout)
    assert status[0]["position"] == 0 and status[0]["configured"] is True
    key = json.loads(run_cli(["apikeys", "create", "--name", "k", "--json"], env).stdout)
    assert key["api_key"].startswith("lg_ak_")
    deleted = run_cli(["clients", "delete", created["client_id"], "--json"], env)
    assert json.loads(deleted.stdout) == {"deleted": created["client_id"]}
    assert json.loads(run_cli(["clients", "list", "--json"], env).stdout) == []


@pytest.mark.spec("livegate", "config: LIVEGATE_SECRET_KEYS, newest first, comma-separated")
def test_secret_keys_from_the_environment_are_split_newest_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIVEGATE_SECRET_KEYS", " new-key , old-key ")
    monkeypatch.setenv("LIVEGATE_TRUSTED_PROXIES", "10.0.0.1,192.168.0.0/16")
    settings = Settings(data_dir=tmp_path)
    assert settings.server_keys == [b"new-key", b"old-key"]
    assert settings.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]
    assert not (tmp_path / "livegate.key").exists()  # no key file when keys are given
