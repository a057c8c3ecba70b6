"""`webcast.call` audit events, written in batches off the request path.

A call appends one row to an in-memory buffer; a background task inserts the buffer with one
multi-row INSERT every `interval` seconds (and on shutdown). The dashboard's usage page reads
these rows (`kind = "webcast.call"`, detail `{route, status}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from anyio import to_thread
from sqlalchemy import insert

from livegate.db.engine import Database
from livegate.db.models import AuditEvent, utcnow

log = logging.getLogger(__name__)
MAX_BUFFER = 50_000  # beyond this (database down for long), calls are no longer recorded


class CallRecorder:
    def __init__(self, database: Database, interval: float = 0.5) -> None:
        self.db = database
        self.interval = interval
        self._buffer: list[dict[str, Any]] = []
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
        if len(self._buffer) >= MAX_BUFFER:
            return
        self._buffer.append(
            {
                "at": utcnow(),
                "kind": "webcast.call",
                "client_pk": client_pk,
                "grant_id": grant_id,
                "account_id": account_id,
                "detail": {"route": route, "status": status},
            }
        )
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        try:
            await to_thread.run_sync(self._write, rows)
        except Exception:
            log.exception("could not record %d webcast calls", len(rows))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(AuditEvent), rows)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.flush()
