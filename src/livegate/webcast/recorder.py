"""`webcast.call` audit events, counted in memory and written in batches off the request path.

A call adds one to the count of its (client, grant, account, route, status); a background task
writes the counts every `interval` seconds (and on shutdown) with one multi-row INSERT: one row
per distinct key, its detail `{route, status, count}`, its time that of the batch's first call.
Under load that is a handful of rows a second instead of one per call (it would otherwise be
the gateway's only per-call database work on the warm path). The
dashboard's usage page reads these rows (`kind = "webcast.call"`, a row without `count` is one
call). A batch the database refuses is kept and written with the next one.

Every 5 s by default, not faster: on PostgreSQL a write costs the gateway CPU in a worker
thread, and a write that overlaps a call holds the GIL against it, so more frequent writes
cost every fetch (docs/benchmarks.md, notes); the usage page lags by up to those 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter

from anyio import to_thread
from sqlalchemy import insert

from livegate.db.engine import Database
from livegate.db.models import AuditEvent, utcnow

log = logging.getLogger(__name__)
# Distinct (client, grant, account, route, status) kept while the database is unreachable;
# calls of keys beyond it are no longer recorded.
MAX_KEYS = 50_000

_Key = tuple[int | None, int | None, int | None, str, int]


class CallRecorder:
    def __init__(self, database: Database, interval: float = 5.0) -> None:
        self.db = database
        self.interval = interval
        self._counts: Counter[_Key] = Counter()
        self._since: dt.datetime | None = None  # when the first call of the batch was made
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        *,
        client_pk: int | None,
        grant_id: int | None,
        account_id: int | None,
        route: str,
        status: int,
    ) -> None:
        key = (client_pk, grant_id, account_id, route, status)
        if key not in self._counts and len(self._counts) >= MAX_KEYS:
            return
        self._counts[key] += 1
        if self._since is None:
            self._since = utcnow()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._counts or self._since is None:
            return
        counts, since = self._counts, self._since
        self._counts, self._since = Counter(), None
        rows: list[dict[str, object]] = [
            {
                "at": since,
                "kind": "webcast.call",
                "client_pk": client_pk,
                "grant_id": grant_id,
                "account_id": account_id,
                "detail": {"route": route, "status": status, "count": n},
            }
            for (client_pk, grant_id, account_id, route, status), n in counts.items()
        ]
        try:
            await to_thread.run_sync(self._write, rows)
        except Exception:
            # Keep the counts for the next attempt; say so once per outage, not every batch.
            if not self._failing:
                log.exception("could not record %d webcast calls; will retry", counts.total())
            self._failing = True
            counts.update(self._counts)
            self._counts = counts
            self._since = since
        else:
            if self._failing:
                log.info("webcast call recording resumed")
            self._failing = False

    def _write(self, rows: list[dict[str, object]]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(AuditEvent), rows)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.flush()
