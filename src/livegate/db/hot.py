"""The lean OAuth path's connections on PostgreSQL: psycopg's own async connections, from a
psycopg_pool pool per event loop.

SQLAlchemy still writes every statement: each is compiled once for SQLAlchemy's psycopg dialect
(placeholders and casts as SQLAlchemy would send them) and psycopg runs the text. What this
skips is SQLAlchemy's asyncio layer on every call (the greenlet hand-off for each statement, the
execution context, the result processing), about a third of an introspection's CPU in
`bench/oauth_floor.py` (docs/benchmarks.md, "The floor under introspection").

Rows are named tuples of the columns' labels; values are psycopg's own: aware datetimes for
`timestamptz`, Python objects for JSON. A JSON parameter is passed wrapped (`Json`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import ClauseElement, make_url
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

T = TypeVar("T")

# What pg_stat_activity shows for these connections.
APPLICATION_NAME = "livegate lean oauth"

_DIALECT = PGDialect_psycopg()
# By identity: the lean path's statements are module constants or built once per shape.
_SQL: dict[int, tuple[ClauseElement, str]] = {}


def sql_of(statement: ClauseElement) -> str:
    """`statement` as the text SQLAlchemy's psycopg dialect sends, with `%(name)s` for each
    bound parameter; compiled on first use."""
    known = _SQL.get(id(statement))
    if known is None:
        known = _SQL[id(statement)] = (statement, str(statement.compile(dialect=_DIALECT)))
    return known[1]


def conninfo(url: str) -> str:
    """A libpq URI for SQLAlchemy's `url` (its query, such as `options`, kept)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class HotConnection:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        # Whether the database has answered on this connection: before that, a failure is a
        # connection that died in the pool, and nothing was done on it.
        self.answered = False

    async def first(self, statement: ClauseElement, params: dict[str, Any]) -> Any:
        """The first row of `statement`, or None."""
        cursor = await self.conn.execute(sql_of(statement), params)
        row = await cursor.fetchone()
        self.answered = True
        return row


class HotPools:
    """One pool per event loop: an async connection belongs to its loop, and one Database may
    serve apps on several loops (the tests' servers in threads)."""

    MIN_SIZE = 4
    MAX_SIZE = 20

    def __init__(self, url: str) -> None:
        self.conninfo = conninfo(url)
        self._pools: dict[int, AsyncConnectionPool[psycopg.AsyncConnection[Any]]] = {}

    async def _pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        key = id(asyncio.get_running_loop())
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = AsyncConnectionPool(
                self.conninfo,
                min_size=self.MIN_SIZE,
                max_size=self.MAX_SIZE,
                kwargs={
                    "autocommit": True,
                    "row_factory": namedtuple_row,
                    "application_name": APPLICATION_NAME,
                },
                open=False,
            )
        if pool.closed:  # until the first opening is done, every caller waits for it
            await pool.open()
        return pool

    async def run(self, fn: Callable[[HotConnection], Awaitable[T]]) -> T:
        """`fn` on one connection, each of its statements committed by itself (autocommit).

        No check when a connection leaves the pool (a round trip each time): one that died
        there (a database restart) fails before the database answered anything on it; then
        every idle connection of the pool is checked (after a restart, all of them died),
        and `fn` runs once more on another.
        """
        pool = await self._pool()
        for attempt in (1, 2):
            async with pool.connection() as raw:
                conn = HotConnection(raw)
                try:
                    return await fn(conn)
                except psycopg.OperationalError:
                    if attempt == 2 or conn.answered or not raw.broken:
                        raise
            await pool.check()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close this event loop's pool (its app is shutting down)."""
        pool = self._pools.pop(id(asyncio.get_running_loop()), None)
        if pool is not None:
            await pool.close()
