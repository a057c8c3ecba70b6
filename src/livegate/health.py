"""`GET /healthz` (the process serves) and `GET /readyz` (it can do its work: the database
answers, Redis answers when configured, and the database's schema is the code's).

A load balancer takes an instance out of rotation on 503 from /readyz and back on 200, with
no restart: each probe looks again. Bodies name which check failed, never a URL, host or
error text that could carry a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Literal

import anyio
import anyio.to_thread
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from livegate.db.engine import Database
from livegate.db.migrate import MIGRATIONS
from livegate.errors import NO_STORE

log = logging.getLogger(__name__)

# A probe answers within this, whatever the database or Redis do.
CHECK_TIMEOUT = 2.0

DatabaseState = Literal["ok", "unreachable", "timeout"]
MigrationState = Literal["current", "behind", "ahead", "unknown"]
RedisState = Literal["ok", "unreachable", "timeout", "not configured"]

_VERSIONS = text("SELECT version_num FROM alembic_version")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Checks(BaseModel):
    database: DatabaseState
    migrations: MigrationState
    redis: RedisState


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: Checks


@cache
def _code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(the heads, every revision) of the migrations shipped with this code."""
    script = ScriptDirectory(str(MIGRATIONS))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


class ReadinessProbe:
    """The checks behind /readyz (no HTTP here).

    Each database check runs in a thread of its own capacity limiter: a database that hangs
    holds at most one thread, never the threadpool the routes share, and later probes answer
    `timeout` meanwhile.
    """

    def __init__(
        self,
        database: Database,
        redis_ping: Callable[[], Awaitable[bool]] | None,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.database = database
        self.redis_ping = redis_ping
        self.timeout = timeout
        self._slot: anyio.CapacityLimiter | None = None

    async def check(self) -> Readiness:
        database, migrations = await self._database()
        redis = await self._redis()
        ready = database == "ok" and migrations == "current" and redis in ("ok", "not configured")
        return Readiness(
            status="ready" if ready else "unavailable",
            checks=Checks(database=database, migrations=migrations, redis=redis),
        )

    def _revisions(self) -> frozenset[str]:
        """The database's Alembic revisions; empty when it has none. Read directly: Alembic's
        MigrationContext would log two lines at every probe."""
        with self.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                return frozenset(conn.execute(_VERSIONS).scalars())
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                return frozenset()  # no version table: never migrated

    async def _database(self) -> tuple[DatabaseState, MigrationState]:
        if self._slot is None:
            self._slot = anyio.CapacityLimiter(1)
        try:
            with anyio.fail_after(self.timeout):
                current = await anyio.to_thread.run_sync(
                    self._revisions, limiter=self._slot, abandon_on_cancel=True
                )
        except TimeoutError:
            return "timeout", "unknown"
        except SQLAlchemyError as exc:
            log.warning("readyz: the database did not answer (%s)", type(exc).__name__)
            return "unreachable", "unknown"
        heads, known = _code_revisions()
        if current == heads:
            return "ok", "current"
        return "ok", ("behind" if current <= known else "ahead")

    async def _redis(self) -> RedisState:
        if self.redis_ping is None:
            return "not configured"
        try:
            with anyio.fail_after(self.timeout):
                answered = await self.redis_ping()
        except TimeoutError:
            return "timeout"
        except Exception as exc:  # whatever the client raises, Redis did not answer
            log.warning("readyz: Redis did not answer (%s)", type(exc).__name__)
            return "unreachable"
        return "ok" if answered else "unreachable"


router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness: the process serves requests",
)
async def healthz() -> JSONResponse:
    return JSONResponse(Health().model_dump(), headers=NO_STORE)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: database and Redis answer, migrations current",
    responses={503: {"model": Readiness, "description": "A check failed; `checks` says which."}},
)
async def readyz(request: Request) -> JSONResponse:
    probe: ReadinessProbe = request.app.state.readiness
    result = await probe.check()
    status = 200 if result.status == "ready" else 503
    return JSONResponse(result.model_dump(), status_code=status, headers=NO_STORE)
