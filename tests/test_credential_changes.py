"""How a gateway process learns of credential changes made by other processes.

Migration 0003's triggers announce every update or delete in the credential tables (a counter
row on SQLite, NOTIFY on PostgreSQL); `RemoteChanges` looks for announcements on the event loop
and moves its process's change generation. Each test's watcher has an engine of its own, so
only the database's announcement can move its generation, never the writer's local counter.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, insert, text, update

from livegate.db.changes import LOOK_EVERY, ChangeCounter, RemoteChanges
from livegate.db.engine import Database
from livegate.db.models import ApiKey, Base, CredentialChanges

DEADLINE = 10.0


async def until(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def watching(url: str) -> AsyncIterator[RemoteChanges]:
    engine = create_engine(url)
    watcher = RemoteChanges(url, ChangeCounter(engine), LOOK_EVERY)
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        engine.dispose()


async def look_after(watcher: RemoteChanges, moment: float) -> None:
    """Wait until a look that started after `moment` has succeeded."""
    await until(lambda: watcher.seen_at > moment, "a look after the write")


def new_key(database: Database) -> int:
    with database.engine.begin() as conn:
        return int(
            conn.execute(
                insert(ApiKey)
                .values(key_digest=secrets.token_hex(32), prefix="lg_ak_", name="watched")
                .returning(ApiKey.id)
            ).scalar_one()
        )


async def test_an_update_or_delete_elsewhere_moves_the_generation_and_an_insert_does_not(
    database: Database,
) -> None:
    async with watching(database.url) as watcher:
        await until(lambda: watcher.seen_within(LOOK_EVERY * 2), "the first look")
        counter = watcher.counter
        before = counter.generation

        inserted = time.monotonic()
        key_id = new_key(database)
        await look_after(watcher, inserted)
        assert counter.generation == before

        with database.engine.begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(name="renamed"))
        await until(lambda: counter.generation > before, "the update's announcement")

        after_update = counter.generation
        with database.engine.begin() as conn:
            conn.execute(delete(ApiKey).where(ApiKey.id == key_id))
        await until(lambda: counter.generation > after_update, "the delete's announcement")


async def test_a_write_rolled_back_is_not_announced(database: Database) -> None:
    key_id = new_key(database)
    async with watching(database.url) as watcher:
        await until(lambda: watcher.seen_within(LOOK_EVERY * 2), "the first look")
        before = watcher.counter.generation
        with database.engine.connect() as conn:
            conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(name="never"))
            conn.rollback()
        rolled_back = time.monotonic()
        await look_after(watcher, rolled_back)
        await look_after(watcher, watcher.seen_at)  # and one more, for a late announcement
        assert watcher.counter.generation == before


async def test_a_watcher_that_cannot_look_trusts_nothing_and_recovers(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livegate.db.changes")
    if database.engine.dialect.name == "postgresql":
        async with watching(database.url) as watcher:
            await until(lambda: watcher.seen_within(LOOK_EVERY * 2), "the first look")
            assert watcher._pg is not None
            pid = watcher._pg.info.backend_pid
            before = watcher.counter.generation
            with database.engine.begin() as conn:  # as a database restart would
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await until(lambda: watcher._failing, "the failed look")
            # Reconnected: whatever changed while nobody listened counts as a change.
            await until(lambda: watcher.counter.generation > before, "the reconnection")
            await until(lambda: not watcher._failing, "a successful look")
        assert "cannot watch credential changes: AdminShutdown" in caplog.text
        assert "watching credential changes again" in caplog.text
        return
    url = f"sqlite:///{tmp_path / 'empty.db'}"  # no tables yet: every look fails
    async with watching(url) as watcher:
        await until(lambda: watcher._failing, "the failed look")
        assert not watcher.seen_within(LOOK_EVERY * 4)
        engine = create_engine(url)
        Base.metadata.create_all(engine, tables=[CredentialChanges.__table__])  # type: ignore[list-item]
        with engine.begin() as conn:
            conn.execute(insert(CredentialChanges).values(id=1, generation=0))
        engine.dispose()
        await until(lambda: watcher.seen_within(LOOK_EVERY * 2), "a successful look")
    assert "cannot watch credential changes: OperationalError" in caplog.text
    assert "watching credential changes again" in caplog.text
