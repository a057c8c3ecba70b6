"""Statements per request at the token and introspection endpoints, counted in PostgreSQL's
own statement log (issue 25: at most 5 per refresh grant, 2 per introspection, 30 for a whole
authorization-code flow from the consent page to the tokens, with two status polls).

`log_statement = 'all'` is set on the test database for this module only (`ALTER DATABASE ...
SET`, reset afterwards); it applies to connections opened after it, so the module runs its own
gateway (and simulator) on fresh pools. Each count is of the log lines for this database
between two markers, after untimed calls that open the pools' connections. BEGIN and COMMIT
count like any statement.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from tests.flows import authorize_url, phone, pkce_pair, query, sim_account, start_qr
from tests.oauth_helpers import REDIRECT, App, introspect, refresh, register
from tests.servers import ServerThread, free_port, wait_for

URL = os.environ.get("LIVEGATE_TEST_DATABASE_URL", "")

pytestmark = pytest.mark.skipif(
    not URL.startswith("postgresql"),
    reason="counts statements in PostgreSQL's log; SQLite keeps no statement log",
)

MAX_REFRESH = 5
MAX_INTROSPECTION = 2
MAX_CODE_FLOW = 30


def _admin(db_url: str) -> str:
    """A libpq conninfo for the test database, without the schema option of the suite."""
    url = make_url(db_url)
    return psycopg.conninfo.make_conninfo(
        host=url.host or "127.0.0.1",
        port=str(url.port or 5432),
        user=url.username or "postgres",
        dbname=url.database or "",
        **({"password": url.password} if url.password else {}),
    )


def _log_file(conninfo: str) -> Path:
    """PostgreSQL's log: Debian's file under /var/log/postgresql, else under data_directory."""
    candidates = glob.glob("/var/log/postgresql/postgresql-*-main.log")
    if not candidates:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            data = conn.execute("SHOW data_directory").fetchone()
            log_dir = conn.execute("SHOW log_directory").fetchone()
        if data and log_dir:
            root = Path(data[0]) / log_dir[0]
            candidates = [str(p) for p in root.glob("*.log")]
    if not candidates:
        pytest.skip("PostgreSQL's log file is not readable here")
    return Path(max(candidates, key=os.path.getmtime))


class StatementLog:
    def __init__(self, conninfo: str, dbname: str) -> None:
        self.conninfo = conninfo
        self.dbname = dbname
        self.path = _log_file(conninfo)

    def count(self, action: Callable[[], object]) -> int:
        """Statements logged for the database while `action` ran."""
        start = self.path.stat().st_size
        action()
        marker = f"statement-count-mark-{secrets.token_hex(8)}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"SELECT '{marker}'")

        def logged() -> str | None:
            with self.path.open("rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            return text[: text.index(marker)].rpartition("\n")[0] if marker in text else None

        text = wait_for(logged, timeout=10, what="the marker in PostgreSQL's log")
        pattern = rf"@{re.escape(self.dbname)} LOG:  (?:statement|execute [^:]*): "
        return len(re.findall(pattern, text))


@pytest.fixture(scope="module")
def statement_log(db_url: str) -> Iterator[StatementLog]:
    conninfo = _admin(db_url)
    dbname = make_url(db_url).database or ""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET log_statement = 'all'")
    try:
        yield StatementLog(conninfo, dbname)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" RESET log_statement')


@pytest.fixture(scope="module")
def counted(
    statement_log: StatementLog, gateway_settings: Settings, data_dir: Path
) -> Iterator[tuple[str, str, Database]]:
    """A gateway and a simulator of this module's own, opened after log_statement was set.

    The simulator takes polls at any pace and the gateway polls it on every status request,
    so that each of the flow's two status requests polls TikTok once: scanned, then done.
    """
    # Its accounts' uids start apart from the suite simulator's (one database for both).
    state = SimState(min_poll_interval=0, _uids=itertools.count(7_420_000_000_000_000_001))
    sim = ServerThread(create_simulator_app(state), log_level="warning").start()
    port = free_port()
    settings = gateway_settings.model_copy(
        update={
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "tiktok_url": sim.url,
            "qr_poll_interval": 0.0,
        }
    )
    database = Database(settings.db_url)
    gateway = ServerThread(create_app(settings, database), port=port, log_level="warning")
    gateway.start()
    try:
        yield gateway.url, sim.url, database
    finally:
        gateway.stop()
        sim.stop()
        database.dispose()


def code_flow(gw: str, sim: str, app: App) -> dict[str, Any]:
    """Consent page, start, QR page, the phone's scan and confirm, two status polls, and the
    code exchange: the tokens."""
    account = sim_account(sim, "count" + secrets.token_hex(4))
    verifier, challenge = pkce_pair()
    url = authorize_url(
        gw,
        app.client_id,
        REDIRECT,
        "webcast:fetch",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    login = start_qr(gw, url)
    statuses = []
    for action in ("scan", "confirm"):
        assert phone(sim, login.qr_token, action, account["uid"]).status_code == 200
        r = login.browser.get(f"/tiktok/oauth/login/{login.login_id}/status")
        statuses.append(r.json())
    login.browser.close()
    assert [s["status"] for s in statuses] == ["scanned", "done"], statuses
    assert isinstance(statuses[1]["redirect"], str)
    grant = {
        "grant_type": "authorization_code",
        "code": query(statuses[1]["redirect"])["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    r = httpx.post(f"{gw}/tiktok/oauth/token", data=grant, auth=app.auth, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_statements_per_request_stay_within_the_bounds(
    statement_log: StatementLog, counted: tuple[str, str, Database]
) -> None:
    gw, sim, database = counted
    app = register(database)
    # Untimed: every pool opens its connections (each connection's set-up is logged too).
    tokens = [code_flow(gw, sim, app) for _ in range(2)]
    pair = tokens[-1]
    chain = [pair["refresh_token"]]

    def refresh_once() -> None:
        r = refresh(gw, app, chain[-1])
        assert r.status_code == 200, r.text
        chain.append(r.json()["refresh_token"])

    def introspect_once() -> None:
        body = introspect(gw, app, pair["access_token"])
        assert body["active"] is True and body["client_id"] == app.client_id

    for _ in range(2):
        refresh_once()
        introspect_once()

    refreshes = statement_log.count(refresh_once)
    introspections = statement_log.count(introspect_once)
    flow = statement_log.count(lambda: code_flow(gw, sim, app))
    print(f"statements: refresh {refreshes}, introspection {introspections}, code flow {flow}")
    assert 0 < refreshes <= MAX_REFRESH
    assert 0 < introspections <= MAX_INTROSPECTION
    assert 0 < flow <= MAX_CODE_FLOW
    # The chain still works: the last refresh token is live, the one before it rotated.
    assert introspect(gw, app, chain[-1])["active"] is True
    assert introspect(gw, app, chain[-2])["active"] is False
