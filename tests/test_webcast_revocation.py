"""Revocation takes effect on the next call, on every process and instance sharing the
database: each webcast call looks its token or API key up, nothing is kept between calls.

Two gateways run over the same database, each with its own engine and pools, as two
processes or instances would; a credential revoked through one (or by a direct write, as the
CLI would) is refused on its very next call through the other, with no wait.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, event, func, inspect, select, text

from livegate.apikeys import find_api_key, revoke_api_key
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.migrate import alembic_config, upgrade
from livegate.db.models import Grant
from tests.conftest import isolated_database
from tests.oauth_helpers import revoke
from tests.servers import ServerThread, wait_for
from tests.webcast_helpers import api_key_for, extra_gateway, new_room, new_user

spec = pytest.mark.spec
NEXT_CALL = ("livegate", "security: revocation takes effect on the next call on every instance")


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def second(gateway_settings: Settings) -> Iterator[ServerThread]:
    """Another gateway over the same database: its own engine, pools and event loop."""
    server = extra_gateway(gateway_settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rv_room(sim: ServerThread) -> str:
    return new_room(sim.url, uname("rvroom"))


def fetch(server: ServerThread, rv_room: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(
        f"{server.url}/webcast/fetch", params={"room_id": rv_room}, headers=headers, timeout=15
    )


def assert_refused(r: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, object] = r.json()
    assert body["code"] == status and body["error"] == error, body
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@spec(*NEXT_CALL)
@spec("RFC 7009", "2")
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_token_revoked_through_one_process_is_refused_on_its_next_call_through_another(
    gateway: ServerThread,
    second: ServerThread,
    sim: ServerThread,
    database: Database,
    rv_room: str,
    kind: str,
) -> None:
    for here, there in ((gateway, second), (second, gateway)):
        u = new_user(here.url, sim.url, database, uname("rv"))
        for _ in range(3):  # both processes have served the token
            assert fetch(here, rv_room, bearer(u.access_token)).status_code == 200
            assert fetch(there, rv_room, bearer(u.access_token)).status_code == 200
        secret = u.access_token if kind == "access_token" else u.refresh_token
        assert revoke(here.url, u.app, secret, kind).status_code == 200
        body = assert_refused(fetch(there, rv_room, bearer(u.access_token)), 401, "invalid_token")
        assert "revoked" in str(body["message"])
        assert_refused(fetch(here, rv_room, bearer(u.access_token)), 401, "invalid_token")


@spec(*NEXT_CALL)
def test_an_api_key_revoked_by_another_process_is_refused_on_its_next_call(
    gateway: ServerThread, second: ServerThread, database: Database, rv_room: str
) -> None:
    key = api_key_for(database, None)
    for server in (gateway, second, gateway):
        assert fetch(server, rv_room, {"X-Api-Key": key}).status_code == 200
    with database.session() as s:  # as the CLI or a dashboard in another process would
        row = find_api_key(s, key)
        assert row is not None
        revoke_api_key(s, row)
    for server in (gateway, second):
        assert_refused(fetch(server, rv_room, {"X-Api-Key": key}), 401, "invalid_api_key")


@spec(*NEXT_CALL)
def test_login_required_met_by_one_process_is_refused_on_the_next_call_through_another(
    gateway: ServerThread, second: ServerThread, sim: ServerThread, database: Database, rv_room: str
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("lr"))
    assert fetch(second, rv_room, bearer(u.access_token)).status_code == 200
    assert httpx.post(f"{sim.url}/_sim/sessions/{u.uid}/expire").status_code == 200
    # The first process learns it from TikTok and marks the grant...
    body = assert_refused(fetch(gateway, rv_room, bearer(u.access_token)), 401, "invalid_token")
    assert body["message"] == "login_required"
    # ...and the second refuses the token on its next call, without asking TikTok.
    r = httpx.get(f"{second.url}/webcast/rate_limits", headers=bearer(u.access_token))
    assert assert_refused(r, 401, "invalid_token")["message"] == "login_required"


def test_a_token_is_refused_once_it_expires(
    gateway_settings: Settings, sim: ServerThread, database: Database, rv_room: str
) -> None:
    short = extra_gateway(gateway_settings, access_token_ttl=2)
    try:
        u = new_user(short.url, sim.url, database, uname("ttl"))
        assert fetch(short, rv_room, bearer(u.access_token)).status_code == 200
        wait_for(lambda: fetch(short, rv_room, bearer(u.access_token)).status_code == 401)
        body = assert_refused(fetch(short, rv_room, bearer(u.access_token)), 401, "invalid_token")
        assert "expired" in str(body["message"])
    finally:
        short.stop()


async def test_concurrent_calls_with_an_unknown_token_are_each_refused(
    gateway: ServerThread,
) -> None:
    unknown = "lg_at_" + secrets.token_urlsafe(32)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as client:
        answers = await asyncio.gather(
            *(client.get("/webcast/rate_limits", headers=bearer(unknown)) for _ in range(8))
        )
    for r in answers:
        assert_refused(r, 401, "invalid_token")
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_a_credential_read_outlives_a_connection_the_database_dropped(
    gateway_settings: Settings, gateway: ServerThread
) -> None:
    """Credential reads skip the pool's pre-ping (one round trip, not three): a pooled
    connection the database dropped (a restart, an idle timeout) is replaced and the read
    tried again."""
    db = Database(gateway_settings.db_url)
    invalidated: list[object] = []
    event.listen(db.reads, "invalidate", lambda *args: invalidated.append(args))
    count = select(func.count()).select_from(Grant)
    try:
        row = db.read_first(count, {})
        assert row is not None
        with db.reads.connect() as conn:  # the one pooled connection, as the next read gets it
            raw = conn.connection.dbapi_connection
            assert raw is not None
            pid = (
                conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                if db.reads.dialect.name == "postgresql"
                else None
            )
        if pid is not None:
            with db.engine.begin() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        else:
            raw.close()
        assert invalidated == []
        again = db.read_first(count, {})
        assert again is not None and again[0] == row[0]
        assert len(invalidated) == 1
    finally:
        db.dispose()


# -- migration 0005 -----------------------------------------------------------------------

CREDENTIAL_TABLES = (
    "access_tokens",
    "grants",
    "tiktok_sessions",
    "session_key_wraps",
    "oauth_clients",
    "api_keys",
)


def watch_objects(url: str) -> set[str]:
    """What migration 0003 made to announce credential changes, as far as it is there."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = set(inspect(conn).get_table_names()) & {"credential_changes"}
            if engine.dialect.name == "postgresql":
                triggers = conn.execute(
                    text(
                        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
                    )
                ).scalars()
                functions = conn.execute(
                    text(
                        "SELECT p.proname FROM pg_proc p "
                        "JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = current_schema() "
                        "AND p.proname = 'livegate_credentials_changed'"
                    )
                ).scalars()
                found |= set(triggers) | set(functions)
            else:
                triggers = conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).scalars()
                found |= set(triggers)
        return found
    finally:
        engine.dispose()


def test_migration_0005_removes_what_0003_made_and_its_downgrade_puts_it_back(
    tmp_path: Path,
) -> None:
    base = os.environ.get("LIVEGATE_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'm.db'}"
    if base.startswith("postgresql"):
        url, drop = isolated_database(base)  # at head
    else:
        url, drop = base, lambda: None
        upgrade(url)
    try:
        assert watch_objects(url) == set()
        command.downgrade(alembic_config(url), "0004_sealed_pending_logins")
        made = watch_objects(url)
        assert "credential_changes" in made
        assert all(any(name.startswith(t) for name in made) for t in CREDENTIAL_TABLES)
        upgrade(url)
        assert watch_objects(url) == set()
    finally:
        drop()


def test_the_shared_test_database_has_no_credential_watch(db_url: str) -> None:
    assert watch_objects(db_url) == set()
