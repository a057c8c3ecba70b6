"""The floor under bench/oauth.py's introspection: what the same load costs in the stack
livegate is built on, with none of livegate's own work, on the same machine in the same run.

Five servers answer wrk's introspection load (`bench/oauth.py`'s Lua: a form body with
`token=`, Basic auth), each under uvicorn with 2 workers (httptools, uvloop), one at a time,
alternating over the rounds:

- `asgi`: a bare ASGI callable that reads the body and answers a fixed JSON object;
- `fastapi`: a FastAPI route that parses the form and answers with JSONResponse;
- `psycopg`: the same, plus one autocommitted SELECT through psycopg's async connection
  (one connection per concurrent request, opened once per worker);
- `sqlalchemy`: the same SELECT through SQLAlchemy's asyncio engine (pooled, autocommit),
  as `Database.hot` ran it until `af11d74` (now psycopg_pool: `db/hot.py`);
- `livegate`: `livegate serve --workers 2` on PostgreSQL, introspecting real access tokens.

For each: requests/s, p50/p99 and the workers' CPU (user + system, from /proc) per request.
The difference between rows is what each layer costs; see docs/benchmarks.md. Needs wrk and a
PostgreSQL superuser that `--postgres` reaches. `--livegate` is a checkout with a .venv (its
uvicorn, FastAPI, psycopg and SQLAlchemy are the ones measured).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from oauth import INTROSPECTED, REDIRECT, Bench, Server, databases, free_port, running, wrk

FLOOR_APPS = """\
import asyncio
import os

import psycopg
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.responses import JSONResponse

DSN = os.environ["FLOOR_DSN"]
CONNECTIONS = int(os.environ["FLOOR_CONNECTIONS"])
BODY = b'{"active":true,"client_id":"floor","scope":"webcast:fetch","exp":1}'
QUERY = "SELECT 1, CAST(%s AS text)"


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


fastapi = FastAPI()


@fastapi.post("/introspect")
async def form_only(request: Request) -> JSONResponse:
    form = await request.form()
    return JSONResponse({"active": True, "token": len(str(form.get("token", "")))})


psycopg_app = FastAPI()
_idle: asyncio.Queue | None = None


async def _connections() -> asyncio.Queue:
    global _idle
    if _idle is None:
        _idle = asyncio.Queue()
        for _ in range(CONNECTIONS):
            conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
            _idle.put_nowait(conn)
    return _idle


@psycopg_app.post("/introspect")
async def with_psycopg(request: Request) -> JSONResponse:
    form = await request.form()
    idle = await _connections()
    conn = await idle.get()
    try:
        cur = await conn.execute(QUERY, (str(form.get("token", "")),))
        row = await cur.fetchone()
    finally:
        idle.put_nowait(conn)
    return JSONResponse({"active": True, "value": row[0]})


sqlalchemy_app = FastAPI()
_engine = None
STATEMENT = text("SELECT 1, CAST(:t AS text)")


@sqlalchemy_app.post("/introspect")
async def with_sqlalchemy(request: Request) -> JSONResponse:
    global _engine
    if _engine is None:
        url = DSN.replace("postgresql://", "postgresql+psycopg://", 1)
        _engine = create_async_engine(url, pool_size=CONNECTIONS, isolation_level="AUTOCOMMIT")
    form = await request.form()
    token = str(form.get("token", ""))
    async with _engine.connect() as conn:
        row = await conn.run_sync(lambda c: c.execute(STATEMENT, {"t": token}).first())
    return JSONResponse({"active": True, "value": row[0]})
"""
# The table's row names, and the app in FLOOR_APPS each one runs.
FLOORS = {
    "asgi": "asgi",
    "fastapi": "fastapi",
    "psycopg": "psycopg_app",
    "sqlalchemy": "sqlalchemy_app",
}
METRICS = ("rps", "p50", "p99", "cpu_us")


def workers_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid`'s children (uvicorn's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ticks = 0
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(server: Server, tokens: list[str], conc: int, args: argparse.Namespace) -> Any:
    wrk(server, "introspect", tokens, conc, args.warmup, args.tmp)
    before = workers_cpu(server.pid)
    row = wrk(server, "introspect", tokens, conc, args.duration, args.tmp)
    spent = workers_cpu(server.pid) - before
    return row | {"cpu_us": spent / max(row["rps"] * args.duration, 1) * 1e6}


@contextmanager
def floor_server(name: str, bench: Bench, conc: int) -> Iterator[Server]:
    port = free_port()
    uvicorn = str(Path(bench.exe).with_name("uvicorn"))
    cmd = [uvicorn, f"floor_apps:{FLOORS[name]}", "--workers", "2", "--port", str(port)]
    cmd += ["--http", "httptools", "--loop", "uvloop", "--log-level", "warning"]
    cmd += ["--no-access-log"]
    dsn = bench.env["LIVEGATE_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    env = bench.env | {"PYTHONPATH": str(bench.tmp), "FLOOR_DSN": dsn}
    env["FLOOR_CONNECTIONS"] = str(conc)
    with running(cmd, env, bench.tmp / f"floor-{name}.log", port) as pid:
        server = Server(name, f"http://127.0.0.1:{port}", "/", "/introspect", ("a", "b"), "")
        server.pid = pid
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--livegate", type=Path, default=here.parent, help="checkout to measure")
    parser.add_argument("--rounds", type=int, default=3, help="default 3")
    parser.add_argument("--duration", type=int, default=8, help="s per run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="s before each run (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections (default 8)")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a superuser connection; the bench database is created and dropped there",
    )  # fmt: skip
    args = parser.parse_args()
    args.dot_venv, args.lg_workers_flag = here / ".dot-venv", True
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        args.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bench = Bench(args, args.tmp)
        (args.tmp / "floor_apps.py").write_text(FLOOR_APPS)
        stack.enter_context(databases(args.postgres, bench.lg_db))
        scope = ("--scope", "webcast:fetch", "--redirect-uri", REDIRECT, "--json")
        bench.client = json.loads(bench.livegate("clients", "create", "--name", "floor", *scope))
        bench.livegate("keys", "status", "--json")
        sim_port, lg_port = free_port(), free_port()
        sim = [bench.exe, "simulator", "--port", str(sim_port)]
        stack.enter_context(running(sim, bench.env, args.tmp / "simulator.log", sim_port))
        bench.sim = bench.env["LIVEGATE_TIKTOK_URL"] = f"http://127.0.0.1:{sim_port}"
        serve = [bench.exe, "serve", "--port", str(lg_port), "--workers", "2"]
        lg_pid = stack.enter_context(running(serve, bench.env, args.tmp / "livegate.log", lg_port))
        auth = (bench.client["client_id"], bench.client["client_secret"])
        paths = ("/tiktok/oauth/token", "/tiktok/oauth/introspect")
        bench.lg = Server("livegate", f"http://127.0.0.1:{lg_port}", *paths, auth, bench.lg_db)
        bench.lg.pid = lg_pid
        tokens = [access for access, _ in bench.lg_pairs(INTROSPECTED)]
        for rnd, name in itertools.product(range(args.rounds), [*FLOORS, "livegate"]):
            if name == "livegate":
                row = measure(bench.lg, tokens, args.concurrency, args)
            else:
                with floor_server(name, bench, args.concurrency) as server:
                    row = measure(server, tokens, args.concurrency, args)
            rows.append(row | {"name": name, "round": rnd})
            print(f"  {rows[-1]}", file=sys.stderr)
    print(
        f"introspection load, wrk {args.concurrency} connections, 2 uvicorn workers each; "
        f"medians of {args.rounds} rounds x {args.duration} s; {os.cpu_count()} CPUs"
    )
    print(f"{'server':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU us/req':>12}")
    for name in [*FLOORS, "livegate"]:
        mine = [r for r in rows if r["name"] == name]
        rps, p50, p99, cpu = (statistics.median(r[k] for r in mine) for k in METRICS)
        errors = sum(r["errors"] for r in mine)
        print(f"{name:<12}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}{errors:>8}{cpu:>12.0f}")


if __name__ == "__main__":
    main()
