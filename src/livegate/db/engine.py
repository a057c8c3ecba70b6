"""The SQLAlchemy engines and session factory.

Most routes run ORM sessions in the threadpool. The OAuth token and introspection endpoints
run their few Core statements through `Database.hot` on PostgreSQL: on the event loop, on
psycopg's own async connections (`db/hot.py`), so that a request costs no thread hand-off; on
SQLite, whose statements are in-process calls, in the threadpool as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Row, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from livegate.db.hot import HotPools

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the one writer; busy_timeout waits instead of failing.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # Freed pages and cells are zeroed: a deleted row leaves nothing in the file.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

    return engine


def make_read_engine(url: str, engine: Engine) -> Engine:
    """The engine for `Database.read_first`: single read statements, one round trip each.

    On PostgreSQL the main engine spends three round trips on a one-row read: the pre-ping,
    the statement inside an implicit transaction, and the ROLLBACK when the connection goes
    back to the pool. Every round trip hands the GIL back and forth with the event loop, and
    the webcast API reads every call's credentials (and the WebSocket relay's tokens) in
    worker threads while calls are in flight, so autocommit without the pre-ping halves a
    status read's CPU (docs/benchmarks.md, notes). SQLite reads are in-process: same engine.
    """
    if url.startswith("sqlite"):
        return engine
    return create_engine(
        url, future=True, isolation_level="AUTOCOMMIT", pool_size=4, max_overflow=16
    )


def engine_without_ping(url: str, engine: Engine) -> Engine:
    """The main engine's twin without the pre-ping, for `Database.run` (SQLite: the same)."""
    if url.startswith("sqlite"):
        return engine
    return create_engine(url, future=True, pool_size=10, max_overflow=20)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.reads = make_read_engine(url, self.engine)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = url.startswith("sqlite")
        # `run`'s sessions: no pre-ping (it retries instead).
        self.lean = engine_without_ping(url, self.engine)
        # The lean OAuth path's own connections (PostgreSQL only: SQLite's run in a thread).
        self.hot = None if self.is_sqlite else HotPools(url)

    async def aclose(self) -> None:
        """Close this event loop's hot pool (its app is shutting down)."""
        if self.hot is not None:
            await self.hot.aclose()

    def read_first(self, statement: Executable, params: dict[str, Any]) -> Row[Any] | None:
        """The first row of one read-only statement, outside any transaction.

        Without a pre-ping a pooled connection may have died (a database restart): that
        connection is dropped and the read is tried once more on a new one, as the pre-ping
        would have done before it.
        """
        for attempt in (1, 2):
            try:
                with self.reads.connect() as conn:
                    return conn.execute(statement, params).first()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def run(self, fn: Callable[[Session], T], *, autocommit: bool = False) -> T:
        """`fn` with a session, committed when it returns, rolled back when it raises.

        Without the pre-ping that `session()` spends a round trip on: a connection that died
        in the pool (a database restart) is dropped and `fn` runs once more on a new one.
        `autocommit`: each statement commits by itself (no BEGIN or COMMIT round trips), for
        work whose every write is one statement that stands alone.
        """
        for attempt in (1, 2):
            try:
                # The same sessionmaker (its event listeners: relay.py's), other engines.
                bind = self.reads if autocommit else self.lean
                with self.sessionmaker(bind=bind) as session:
                    try:
                        result = fn(session)
                        session.commit()
                    except BaseException:
                        session.rollback()
                        raise
                    return result
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
        self.reads.dispose()
        self.lean.dispose()
