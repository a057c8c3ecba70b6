"""`livegate serve --workers N` as a real command (serving.py): migrations once in the parent,
every worker answering with the redacting JSON log, metrics summed over the workers, the
per-worker warning without Redis, and SIGTERM draining requests in flight and closing the
relays with 1012. On SQLite, or on PostgreSQL with LIVEGATE_TEST_DATABASE_URL."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from livegate.db.engine import Database
from livegate.db.migrate import MIGRATIONS
from livegate.simulator.state import SimState
from tests.servers import ServerThread, free_port, wait_for
from tests.test_observability import requests_count, samples
from tests.test_relay_revocation import closed_within, open_relay, relays_a_comment, uname
from tests.webcast_helpers import fault, new_room, new_user

spec = pytest.mark.spec
PG_URL = os.environ.get("LIVEGATE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("LIVEGATE_TEST_REDIS_URL")
TOKEN = "metrics-" + secrets.token_urlsafe(24)
STARTED = "Application startup complete."


def base_env(**settings: str) -> dict[str, str]:
    """This environment without any livegate or prometheus setting, plus `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIVEGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update({f"LIVEGATE_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    metrics_url: str | None = None
    requests: int = field(default=0)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                out.append(json.loads(raw))
        return out

    def worker_pids(self) -> set[int]:
        """The processes that serve the app (with one worker, the command's own)."""
        return {line["process"] for line in self.lines() if line["event"] == STARTED}

    def access_lines(self) -> dict[str, dict[str, Any]]:
        """uvicorn's access log lines, by request id."""
        return {
            line["request_id"]: line
            for line in self.lines()
            if line.get("logger") == "uvicorn.access" and "request_id" in line
        }


@contextmanager
def serving(
    tmp: Path, workers: int, env: dict[str, str], port: int | None = None
) -> Iterator[Served]:
    """`livegate serve --workers <workers>`, its output in a file, until every worker serves."""
    port = port or free_port()
    log_path = tmp / f"serve-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "livegate.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    metrics_port = env.get("LIVEGATE_METRICS_PORT")
    served = Served(
        proc,
        f"http://127.0.0.1:{port}",
        log_path,
        f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None,
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or len(served.worker_pids()) == workers,
            timeout=90,
            interval=0.2,
            what=f"{workers} workers started",
        )
        assert proc.poll() is None, log_path.read_text()
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


@contextmanager
def unmigrated_database(tmp: Path) -> Iterator[str]:
    """An empty database: SQLite, or a new schema of LIVEGATE_TEST_DATABASE_URL."""
    if not PG_URL:
        yield f"sqlite:///{tmp / 'workers.db'}"
        return
    schema = f"lgworkers_{os.getpid()}_{secrets.token_hex(3)}"
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`livegate serve --workers 2` on an empty database, JSON logs, metrics on a port and
    behind a token, no Redis."""
    tmp = tmp_path_factory.mktemp("workers")
    with unmigrated_database(tmp) as url:
        env = base_env(
            data_dir=str(tmp),
            database_url=url,
            log_json="true",
            metrics_token=TOKEN,
            metrics_port=str(free_port()),
            tiktok_url="http://127.0.0.1:9",  # never called here
        )
        with serving(tmp, 2, env) as served:
            yield served


def fresh_get(url: str, **kw: Any) -> httpx.Response:
    """One request on a connection of its own, so that any worker may accept it."""
    with httpx.Client(headers={"Connection": "close"}, timeout=10) as client:
        return client.get(url, **kw)


def until_every_worker_answered(served: Served, path: str, **kw: Any) -> list[str]:
    """GET `path` on new connections until each worker has logged one; the request ids."""
    ids: list[str] = []
    workers = served.worker_pids()

    def all_answered() -> bool:
        ids.append(fresh_get(served.url + path, **kw).headers["x-request-id"])
        logged = served.access_lines()
        return {logged[i]["process"] for i in ids if i in logged} == workers

    wait_for(all_answered, timeout=60, interval=0.01, what="every worker to answer")
    # The last line may land a moment after its answer.
    wait_for(lambda: all(i in served.access_lines() for i in ids), timeout=10)
    return ids


def scrape(
    url: str, token: str | None = None
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = fresh_get(url, headers=headers)
    assert r.status_code == 200, r.text
    return samples(r.text)


def test_migrations_run_once_in_the_parent_before_the_workers_start(two_workers: Served) -> None:
    lines = two_workers.lines()
    upgrades = [
        (i, line)
        for i, line in enumerate(lines)
        if line["logger"] == "alembic.runtime.migration"
        and line["event"].startswith("Running upgrade")
    ]
    revisions = list(ScriptDirectory(str(MIGRATIONS)).walk_revisions())
    assert len(upgrades) == len(revisions)  # each revision once, by one process
    assert {line["process"] for _, line in upgrades} == {two_workers.proc.pid}
    first_worker = min(
        i
        for i, line in enumerate(lines)
        if line["process"] in two_workers.worker_pids() and line["event"] == STARTED
    )
    assert max(i for i, _ in upgrades) < first_worker
    assert two_workers.proc.pid not in two_workers.worker_pids()
    assert len(two_workers.worker_pids()) == 2


def test_without_redis_serve_warns_that_limits_are_counted_per_worker(
    two_workers: Served,
) -> None:
    warnings = [
        line
        for line in two_workers.lines()
        if line["level"] == "warning" and line["logger"] == "livegate.serve"
    ]
    assert len(warnings) == 1
    message = warnings[0]["event"]
    assert "2 workers without LIVEGATE_REDIS_URL" in message
    assert "counted per worker" in message


def test_every_worker_answers_and_logs_the_request_id(two_workers: Served) -> None:
    ids = until_every_worker_answered(two_workers, "/healthz")
    logged = two_workers.access_lines()
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        line = logged[request_id]
        assert '"GET /healthz HTTP/1.1" 200' in line["event"]
        assert line["process"] in two_workers.worker_pids()
    ready = fresh_get(f"{two_workers.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "current",
        "redis": "not configured",
    }


def test_a_scrape_sums_every_worker(two_workers: Served) -> None:
    assert two_workers.metrics_url is not None
    token_before = scrape(f"{two_workers.url}/metrics", TOKEN)
    port_before = scrape(two_workers.metrics_url)
    ids = until_every_worker_answered(two_workers, "/healthz")
    token_after = scrape(f"{two_workers.url}/metrics", TOKEN)
    port_after = scrape(two_workers.metrics_url)
    for before, after in ((token_before, token_after), (port_before, port_after)):
        grew = requests_count(after, "/healthz", "GET", 200) - requests_count(
            before, "/healthz", "GET", 200
        )
        assert grew == len(ids)
        assert after[("livegate_workers", frozenset())] == 2


@spec("livegate", "security: no secret reaches a log line")
def test_worker_access_log_lines_are_redacted(two_workers: Served) -> None:
    secrets_sent: list[str] = []
    ids: list[str] = []
    for _ in range(3):
        token = "lg_at_" + secrets.token_urlsafe(24)
        login_id = secrets.token_urlsafe(16)
        ticket = secrets.token_hex(24)
        code = secrets.token_urlsafe(16)
        secrets_sent += [token, token.removeprefix("lg_at_"), login_id, ticket, code]
        ids += until_every_worker_answered(
            two_workers, "/tiktok/oauth/userinfo", params={"access_token": token, "code": code}
        )
        ids += until_every_worker_answered(two_workers, f"/tiktok/oauth/login/{login_id}/status")
        ids += until_every_worker_answered(two_workers, f"/webcast/ws/{ticket}/")
    logged = two_workers.access_lines()
    assert {logged[i]["process"] for i in ids} == two_workers.worker_pids()
    assert all("[redacted]" in logged[i]["event"] for i in ids)
    output = two_workers.log_path.read_text(errors="replace")
    assert [s for s in secrets_sent if s in output] == []


def test_a_dead_worker_is_replaced_and_leaves_no_live_gauge(two_workers: Served) -> None:
    """Runs after the other tests on `two_workers`: it changes which processes serve."""
    assert two_workers.metrics_url is not None
    before = scrape(two_workers.metrics_url)
    served_before = requests_count(before, "/healthz", "GET", 200)
    victim = min(two_workers.worker_pids())
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(two_workers.worker_pids() - {victim}) == 2,
        timeout=60,
        interval=0.2,
        what="a new worker in place of the killed one",
    )
    after = scrape(two_workers.metrics_url)
    # Without the supervisor's mark_process_dead, the dead worker's 1 would still count.
    assert after[("livegate_workers", frozenset())] == 2
    # What the dead worker counted stays counted.
    assert requests_count(after, "/healthz", "GET", 200) == served_before
    assert fresh_get(f"{two_workers.url}/healthz").status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set LIVEGATE_TEST_REDIS_URL")
def test_with_redis_serve_does_not_warn_and_readyz_checks_redis(
    tmp_path: Path, db_url: str
) -> None:
    assert REDIS_URL is not None
    env = base_env(
        data_dir=str(tmp_path),
        database_url=db_url,
        redis_url=REDIS_URL,
        log_json="true",
        tiktok_url="http://127.0.0.1:9",
    )
    with serving(tmp_path, 2, env) as served:
        ready = fresh_get(f"{served.url}/readyz")
        warnings = [line for line in served.lines() if line["level"] == "warning"]
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["redis"] == "ok"
    assert warnings == []


@spec("livegate", "operations: SIGTERM drains requests in flight and closes relays with 1012")
def test_sigterm_drains_requests_in_flight_and_closes_relays_with_1012(
    tmp_path: Path,
    sim: ServerThread,
    sim_state: SimState,
    database: Database,
    db_url: str,
    data_dir: Path,
) -> None:
    # One worker: a relay ticket is held by the process whose fetch issued it.
    port = free_port()
    env = base_env(
        data_dir=str(data_dir),
        database_url=db_url,
        tiktok_url=sim.url,
        log_json="true",
        qr_poll_interval="0.4",
        purge_interval="0",
        rate_limit_failures="100000/minute",
        rate_limit_signup="100000/minute",
        **({"redis_url": REDIS_URL} if REDIS_URL else {}),
    )
    env["LIVEGATE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    env["LIVEGATE_METRICS_PORT"] = str(free_port())
    with serving(tmp_path, 1, env, port) as served:
        user = new_user(served.url, sim.url, database, uname("term"))
        streamer = uname("terms")
        room_id = new_room(sim.url, streamer)
        ws = open_relay(served.url, user.access_token, room_id)
        relays_a_comment(ws, sim.url, room_id)
        assert served.metrics_url is not None
        scraped = scrape(served.metrics_url)  # one process: its own registry
        assert requests_count(scraped, "/webcast/fetch", "GET", 200) == 1
        assert scraped[("livegate_workers", frozenset())] == 1
        answers: list[httpx.Response] = []

        def slow_fetch() -> None:
            answers.append(
                httpx.get(
                    f"{served.url}/webcast/fetch",
                    params={"room_id": room_id},
                    headers={"Authorization": f"Bearer {user.access_token}"},
                    timeout=20,
                )
            )

        # An event stream (SSE) is open too: it streams until the client leaves.
        with httpx.stream(
            "GET",
            f"{served.url}/webcast/rooms/{streamer}/events",
            headers={"Authorization": f"Bearer {user.access_token}"},
            timeout=30,
        ) as stream:
            lines = stream.iter_lines()
            assert json.loads(next(lines).removeprefix("data: "))["type"] == "roomInfo"
            with fault(sim.url, route="im/fetch", delay_ms=2500, count=1):
                in_flight = threading.Thread(target=slow_fetch)
                in_flight.start()
                # The simulator took the fault: the fetch is waiting on TikTok.
                wait_for(lambda: not sim_state.faults, timeout=10, what="the fetch in flight")
                served.proc.send_signal(signal.SIGTERM)
                code, _reason = closed_within(ws, 10)
                in_flight.join(timeout=20)
            # The event stream's connection is closed, not waited for: its client reconnects
            # elsewhere with Last-Event-ID.
            with pytest.raises(httpx.RemoteProtocolError):
                list(lines)
        assert code == 1012  # service restart: the client reconnects elsewhere
        assert [a.status_code for a in answers] == [200]
        # uvicorn, once drained, ends by the signal it caught, as the default handler would.
        assert served.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        events = [line["event"] for line in served.lines()]
        assert "Application shutdown complete." in events
        assert not [e for e in events if "timeout graceful shutdown exceeded" in e], events
