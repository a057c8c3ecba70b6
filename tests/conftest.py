"""Real servers for the suite: the simulator and the gateway, each under uvicorn on loopback.

The database is SQLite in a temporary directory, or LIVEGATE_TEST_DATABASE_URL (PostgreSQL);
LIVEGATE_TEST_REDIS_URL switches the rate limiter to Redis.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.migrate import upgrade
from livegate.logs import setup_logging
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from tests.servers import ServerThread, free_port
from tests.webcast_helpers import User, add_comment, new_room, new_user

LOG = io.StringIO()


def isolated_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh, migrated database for this run: on PostgreSQL, a schema of its own, so that
    concurrent runs against the same database never see each other."""
    if not url.startswith("postgresql"):
        upgrade(url)
        return url, lambda: None
    schema = f"lgtest_{os.getpid()}_{secrets.token_hex(3)}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    upgrade(scoped)

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    return scoped, drop


@pytest.fixture(scope="session")
def log_buffer() -> io.StringIO:
    return LOG


@pytest.fixture(scope="session")
def sim_state() -> SimState:
    return SimState(min_poll_interval=0.3)


@pytest.fixture(scope="session")
def sim(sim_state: SimState) -> Iterator[ServerThread]:
    server = ServerThread(create_simulator_app(sim_state), log_level="info").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("livegate")


@pytest.fixture(scope="session")
def db_url(data_dir: Path) -> Iterator[str]:
    url = os.environ.get("LIVEGATE_TEST_DATABASE_URL") or f"sqlite:///{data_dir / 'test.db'}"
    scoped, drop = isolated_database(url)
    yield scoped
    drop()


@pytest.fixture(scope="session")
def gateway_settings(sim: ServerThread, db_url: str, data_dir: Path) -> Settings:
    port = free_port()
    return Settings(
        host="127.0.0.1",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        database_url=db_url,
        redis_url=os.environ.get("LIVEGATE_TEST_REDIS_URL") or None,
        tiktok_url=sim.url,
        qr_poll_interval=0.4,
        purge_interval=0,
        # Every test calls from 127.0.0.1, fuzzing and bad credentials included: the limits
        # per address would refuse the rest of the run (tests/test_rate_limits.py has its own).
        rate_limit_failures="100000/minute",
        rate_limit_signup="100000/minute",
    )


@pytest.fixture(scope="session")
def database(gateway_settings: Settings) -> Iterator[Database]:
    db = Database(gateway_settings.db_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def gateway(gateway_settings: Settings, database: Database) -> Iterator[ServerThread]:
    setup_logging("info", stream=LOG)
    app = create_app(gateway_settings, database)
    server = ServerThread(app, port=gateway_settings.port, log_level="info").start()
    yield server
    server.stop()


# -- what the webcast tests share: one meaning each, defined only here -------------------------


@pytest.fixture(scope="module")
def gw(gateway: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client on the session's gateway."""
    with httpx.Client(base_url=gateway.url, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def user(gateway: ServerThread, sim: ServerThread, database: Database) -> User:
    """A TikTok account signed in to the gateway, with an OAuth token and an API key."""
    return new_user(gateway.url, sim.url, database, f"viewer{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def room(sim: ServerThread) -> tuple[str, str]:
    """A live room in the simulator with one comment: (room id, streamer's unique id)."""
    streamer = f"streamer{secrets.token_hex(4)}"
    room_id = new_room(sim.url, streamer)
    add_comment(sim.url, room_id, f"fan{secrets.token_hex(4)}", "first!")
    return room_id, streamer
