"""A change counter for the rows that in-memory credential caches depend on.

The webcast API keeps the result of an access-token or API-key check in memory so a warm call
does not need the database (see `api/auth.py`). The cache entries remember the `generation`
they were read under; any update or delete by this process in the tables behind them moves
the generation on, so the next call checks the database again and a revocation takes effect
on the very next call, whatever code path made it. `RemoteChanges` moves it too when another
process changed those tables.

The generation moves twice per writing connection: when the statement runs, and when the
connection goes back to the pool (after its commit or rollback). A check that read the
database between the write and the commit still saw the old row, but it also recorded the
generation before the second move, so its answer is not reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import sqlite3
import time
from typing import Any

import psycopg
from sqlalchemy import Engine, event, make_url

log = logging.getLogger(__name__)

LOOK_EVERY = 0.5  # seconds between looks for other processes' credential changes
CHANNEL = "livegate_credentials"  # migration 0003's NOTIFY channel on PostgreSQL
_SQLITE_GENERATION = "SELECT generation FROM credential_changes WHERE id = 1"

# Tables whose rows decide whether a token or key is usable, or which session it signs with
# (migration 0003 puts its triggers on the same). Only updates and deletes count: a new row
# never changes the answer for a credential already checked.
CREDENTIAL_TABLES = frozenset(
    {"access_tokens", "grants", "tiktok_sessions", "session_key_wraps", "oauth_clients", "api_keys"}
)
_WRITE = re.compile(r'\s*(UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_INFO_KEY = "livegate.credentials_changed"


def _touches_credentials(statement: str) -> bool:
    if statement[:1].upper() not in ("U", "D") and not statement[:1].isspace():
        return False
    match = _WRITE.match(statement)
    return match is not None and match.group(2).lower() in CREDENTIAL_TABLES


class ChangeCounter:
    def __init__(self, engine: Engine) -> None:
        self._counter = itertools.count(1)
        self.generation = 0
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "checkin", self._checkin)

    def bump(self) -> None:
        # next() on a count is atomic under the GIL: writers in several threads never
        # leave the generation where a reader saw it.
        self.generation = next(self._counter)

    def _after_execute(
        self,
        conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if _touches_credentials(statement):
            conn.info[_INFO_KEY] = True
            self.bump()

    def _checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_INFO_KEY, False):
            self.bump()


class RemoteChanges:
    """Credential changes made by other processes, learnt on the event loop, no worker thread.

    Migration 0003's triggers announce every UPDATE or DELETE of a credential table: on
    SQLite they move a counter row in the writing transaction, on PostgreSQL they NOTIFY at
    commit. `run()` looks every `interval` (SQLite: reads the counter; PostgreSQL: a round
    trip on a LISTENing connection, which delivers the notifications that arrived) and moves
    this process's `ChangeCounter` when something changed, so cached checks are redone.

    `seen_within(age)`: whether a look that started less than `age` ago succeeded. Until it
    has (at start, or while the database is unreachable) nothing cached may be trusted: a
    change could have gone unannounced.
    """

    def __init__(self, url: str, counter: ChangeCounter, interval: float) -> None:
        self.url = make_url(url)
        self.counter = counter
        self.interval = interval
        self.seen_at = -math.inf  # monotonic: start of the last look that succeeded
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_generation: int | None = None
        self._pg: psycopg.AsyncConnection[Any] | None = None
        self._failing = False

    def seen_within(self, age: float) -> bool:
        return time.monotonic() - self.seen_at < age

    async def run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self.interval * 2):
                        await self.look()
                except (OSError, sqlite3.Error, psycopg.Error, TimeoutError) as exc:
                    await self._drop()
                    if not self._failing:
                        log.warning("cannot watch credential changes: %s", type(exc).__name__)
                    self._failing = True
                else:
                    if self._failing:
                        log.info("watching credential changes again")
                    self._failing = False
                    self.seen_at = started
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            await self._drop()

    async def look(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            self._look_sqlite()
        else:
            await self._look_postgres()

    def _look_sqlite(self) -> None:
        # On the event loop: a one-row read of a local file in WAL mode takes microseconds
        # and never waits on a writer; a thread hand-off would cost more than the read.
        if self._sqlite is None:
            path = self.url.database
            if not path or path == ":memory:":  # private to this process: nothing to watch
                return
            self._sqlite = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        row = self._sqlite.execute(_SQLITE_GENERATION).fetchone()
        generation = int(row[0])
        if generation != self._sqlite_generation:
            self._sqlite_generation = generation
            self.counter.bump()

    async def _look_postgres(self) -> None:
        if self._pg is None:
            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=5
            )
            cursor = await conn.execute("SELECT current_schema()")
            row = await cursor.fetchone()
            schema = row[0] if row else None
            conn.add_notify_handler(
                lambda notify: self.counter.bump() if notify.payload == schema else None
            )
            await conn.execute(f"LISTEN {CHANNEL}")
            self._pg = conn
            self.counter.bump()  # changes made while nobody listened went unannounced
        await self._pg.execute("SELECT 1")  # reads what the server sent: notifications too

    async def _drop(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
            self._sqlite_generation = None
        if self._pg is not None:
            conn, self._pg = self._pg, None
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
