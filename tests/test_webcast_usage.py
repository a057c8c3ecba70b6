"""What the webcast API's callers use up and leave behind: rate limits per token and API key
(429 with RateLimit-* and Retry-After, the caller's own view of its limits), and each call
counted for the dashboard's usage page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import AuditEvent, Base
from livegate.webcast.recorder import CallRecorder
from tests.servers import ServerThread, wait_for
from tests.test_webcast_api import assert_error, bearer, uname
from tests.webcast_helpers import User, client_pk, extra_gateway, new_user


@pytest.fixture(scope="module")
def rate_limited(gateway_settings: Settings) -> Iterator[ServerThread]:
    server = extra_gateway(
        gateway_settings, rate_limit_connect="2/minute", rate_limit_calls="3/minute"
    )
    yield server
    server.stop()


# -- rate limits ----------------------------------------------------------------------------


def test_rate_limit_429_shape_and_headers(
    rate_limited: ServerThread, user: User, room: tuple[str, str]
) -> None:
    h = {"x-oauth-token": user.access_token}
    url = f"{rate_limited.url}/webcast/fetch"
    for _ in range(2):
        assert httpx.get(url, params={"room_id": room[0]}, headers=h).status_code == 200
    r = httpx.get(url, params={"room_id": room[0]}, headers=h)
    body = assert_error(r, 429, "rate_limited")
    assert body["limit_label"] == "connect:token"
    assert r.headers["ratelimit-limit"] == "2"
    assert int(r.headers["ratelimit-remaining"]) == 0
    assert int(r.headers["ratelimit-reset"]) > time.time()
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # Other calls are counted separately.
    r = httpx.get(f"{rate_limited.url}/webcast/room_info", params={"room_id": room[0]}, headers=h)
    assert r.status_code == 200, r.text
    limits = httpx.get(f"{rate_limited.url}/webcast/rate_limits", headers=h).json()["limits"]
    by = {(x["credential"], x["category"]): x for x in limits}
    assert by[("token", "connect")]["remaining"] == 0 and by[("token", "connect")]["max"] == 2
    assert by[("token", "calls")]["remaining"] == 2 and by[("token", "calls")]["max"] == 3
    # The API key has its own counters.
    r = httpx.get(url, params={"room_id": room[0]}, headers={"X-Api-Key": user.api_key})
    assert r.status_code == 200


def test_rate_limits_route(gw: httpx.Client, user: User) -> None:
    r = gw.get(
        "/webcast/rate_limits", headers={**bearer(user.access_token), "X-Api-Key": user.api_key}
    )
    assert r.status_code == 200, r.text
    limits = r.json()["limits"]
    assert {(x["credential"], x["category"]) for x in limits} == {
        ("token", "connect"),
        ("token", "calls"),
        ("api_key", "connect"),
        ("api_key", "calls"),
    }
    assert all(x["remaining"] <= x["max"] for x in limits)


# -- audit ----------------------------------------------------------------------------------


def test_calls_are_recorded_for_the_usage_page(
    gateway: ServerThread, sim: ServerThread, database: Database, room: tuple[str, str]
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("audit"))
    pk = client_pk(database, u.app.client_id)
    h = bearer(u.access_token)
    for _ in range(3):
        r = httpx.get(f"{gateway.url}/webcast/fetch", params={"room_id": room[0]}, headers=h)
        assert r.status_code == 200
    for _ in range(2):
        assert httpx.get(f"{gateway.url}/webcast/fetch", headers=h).status_code == 400

    def rows() -> list[dict[str, Any]]:
        with database.session() as s:
            found = s.scalars(
                select(AuditEvent).where(
                    AuditEvent.client_pk == pk, AuditEvent.kind == "webcast.call"
                )
            ).all()
            return [dict(e.detail) for e in found]

    def all_five() -> list[dict[str, Any]] | None:
        got = rows()
        return got if sum(d["count"] for d in got) >= 5 else None

    got = wait_for(all_five, timeout=20)  # the recorder writes every 5 s
    totals: dict[tuple[str, int], int] = {}
    for d in got:
        totals[(d["route"], d["status"])] = totals.get((d["route"], d["status"]), 0) + d["count"]
    assert totals == {("GET /webcast/fetch", 200): 3, ("GET /webcast/fetch", 400): 2}
    # Counted per batch, not a row per call: five quick calls fall into at most two batches.
    assert len(got) <= 4 and max(d["count"] for d in got) >= 2


async def test_the_recorder_keeps_a_batch_the_database_refused(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/recorder.db")  # no tables yet: writes fail
    recorder = CallRecorder(database, interval=3600)

    def fetch(status: int) -> None:
        recorder.record(
            client_pk=None,
            grant_id=None,
            account_id=None,
            route="GET /webcast/fetch",
            status=status,
        )

    try:
        fetch(200)
        fetch(200)
        await recorder.flush()
        Base.metadata.create_all(database.engine)
        fetch(400)
        await recorder.flush()
        with database.session() as s:
            got = [dict(e.detail) for e in s.scalars(select(AuditEvent)).all()]
        assert sorted((d["status"], d["count"]) for d in got) == [(200, 2), (400, 1)]
    finally:
        await recorder.aclose()
        database.dispose()
