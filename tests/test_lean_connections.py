"""The lean OAuth path's own PostgreSQL connections (`db/hot.py`: psycopg_pool, no check when a
connection leaves the pool): connections the database dropped, as a restart drops them all,
cost the next requests nothing but a retry."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from livegate.db.engine import Database
from livegate.db.hot import APPLICATION_NAME
from tests.oauth_helpers import introspect, refresh, register, tokens_for
from tests.servers import ServerThread

pytestmark = pytest.mark.skipif(
    not os.environ.get("LIVEGATE_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the lean path's own connections exist on PostgreSQL only",
)

LEAN = "application_name = :name AND datname = current_database()"


def lean_backends(database: Database) -> set[int]:
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT pid FROM pg_stat_activity WHERE {LEAN}"),  # noqa: S608  (a constant)
            {"name": APPLICATION_NAME},
        )
        return {pid for (pid,) in rows}


def test_the_lean_path_outlives_every_connection_the_database_dropped(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    pair = tokens_for(gateway.url, sim.url, app)  # the exchange opened the lean pool
    before = lean_backends(database)
    assert before, "no connection of the lean path is open"
    with database.engine.begin() as conn:
        conn.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {LEAN}"),  # noqa: S608
            {"name": APPLICATION_NAME},
        )

    assert introspect(gateway.url, app, pair["access_token"])["active"] is True
    r = refresh(gateway.url, app, pair["refresh_token"])
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert introspect(gateway.url, app, rotated["access_token"])["active"] is True
    assert introspect(gateway.url, app, pair["refresh_token"])["active"] is False

    after = lean_backends(database)
    assert after and not after & before, "the lean path still uses a connection it lost"
