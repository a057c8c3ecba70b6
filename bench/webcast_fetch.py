"""Added latency of `GET /webcast/fetch` through livegate vs the simulator's im/fetch directly.

Starts its own simulator and gateway (`livegate simulator` / `livegate serve` subprocesses on
loopback), signs a viewer in through the real QR flow for an access token, creates an API key,
then measures p50/p99 at concurrency 1, 16 and 64 with bounded request counts, the six
targets interleaved in 20 rounds, each target's block in a round opened by 2 untimed requests:

  direct          GET {sim}/webcast/im/fetch/?<the query livegate sends>, its headers
  apikey          GET {gateway}/webcast/fetch?room_id=...  X-Api-Key  (anonymous: passed through)
  direct+session  the same im/fetch, signed with a simulator session (Cookie: sessionid=...)
  token           GET {gateway}/webcast/fetch?room_id=...  Bearer     (session from the vault;
                                                              push_server rewritten)
  floor           the direct request through a bare uvicorn pass-through on livegate's upstream
                  connection pool (tiktok/connections.py): the least
                  any Python proxy hop adds on this machine
  direct again    `direct` once more, last in each round: its "+" is the benchmark's own noise

Each level also prints the CPU time per request of the process that answered each target,
how busy each half of the CPUs was while each target was measured (and the share the host
stole), and a 95% bootstrap interval for every "+p99": at c=1 with a delay, a p99 of 1500
requests is their 15th slowest, and where the interval straddles a target, one run cannot say
which side of it the hop is on.
The baselines are the very requests livegate sends upstream (query read back from the
simulator's request log), so "+p50/+p99" is what livegate adds, not the simulator's work.

Each level prints two tables. `latency` is each request's round trip as the client saw it.
`beyond up` is the same request's round trip less the time the simulator held it (from its
app receiving the request to the last body part leaving, noted by a stopwatch around the
simulator app): the path to the upstream and back, which is where a hop adds anything. The
upstream's own time, its delay's timer jitter included, is taken out request by request,
so a "+" there compares two narrow distributions instead of two 100 ms ones whose tails
move with the simulator's timers. Every worker asks for a room of its own; the simulator
notes each room's requests in the order they arrive, which pairs them with the worker's.

The gateway and the floor collect their garbage as they would in service; the simulator and
the load generator, which are not what is measured, collect theirs between timed blocks.

`--upstream-delay-ms D` makes the simulator wait D ms (a sleep, no CPU) before answering every
im/fetch, direct or proxied, as TikTok across the internet does; request counts then shrink
to about 30 s per target and level, but to no fewer than MIN_DELAYED. Without it, simulator,
proxies and load generator compete for the same cores, and at 16 and 64 clients the "+"
columns mostly measure that contention: in a closed loop at full load, every microsecond of
CPU a hop spends adds to everyone's wait.

Usage:
  .venv/bin/python bench/webcast_fetch.py                       # SQLite in a temp dir
  .venv/bin/python bench/webcast_fetch.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
     (creates and afterwards drops a scratch database `livegate_bench_<random>` on that server)
  .venv/bin/python bench/webcast_fetch.py --upstream-delay-ms 100
  .venv/bin/python bench/webcast_fetch.py --pin --upstream-delay-ms 100
     (livegate, the floor and the load generator on half of the CPUs, the simulator on the other)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import SplitResult, urlencode, urlsplit

import httptools
import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.oauth_helpers import App, tokens_for  # noqa: E402

from livegate.tiktok.connections import encode_head  # noqa: E402
from livegate.tiktok.http import DEFAULT_USER_AGENT  # noqa: E402

LIVEGATE = str(Path(sys.executable).parent / "livegate")
REDIRECT = "http://127.0.0.1:9/callback"
LEVELS = {1: 3000, 16: 4000, 64: 6000}
# Targets take turns in short blocks: a slow spell of the machine (seconds long, seen on the
# benchmark VM) then lands on every target alike instead of on one target's whole sample.
ROUNDS = 20
# Requests per target and level, at least, with an upstream delay: at c=1 a p99 of 500 was
# their 5th slowest, and its 95% interval 3-4 ms wide on the benchmark VM.
MIN_DELAYED = 1500
RESAMPLES = 1000  # bootstrap resamples for the interval of each "+p99"
WARMUP = 300
# Untimed requests that open each target's block in a round, ahead of measure()'s own untimed
# first request on each connection (which also warms a proxy's upstream pool at the block's
# concurrency). Added when a cached credential check aged out after 1 s, which the other
# targets' blocks in between (about 12 s at c=1) outlasted; checks no longer age
# (db/changes.py), so these now only wake the answering process once more.
BLOCK_WARMUP = 2
# Both servers under uvicorn without access logs, so the numbers are about the request path.
# The simulator runs inside a stopwatch: for every im/fetch it notes, by room, how long the
# simulator held the request (from its app receiving it to the last body part leaving),
# the upstream's own share of that request's latency; GET /_bench/held hands the notes over
# and forgets them. The simulator stands in for TikTok, whose pauses are not livegate's: it
# collects its garbage when GET /_bench/held is called, between timed blocks, never during
# one (measured under c=64: its full collections paused it 13-36 ms inside timed blocks, and
# whichever target was running took the hit).
SIM_MAIN = """
import gc, json, sys, time, uvicorn
from collections import defaultdict
from urllib.parse import parse_qs
from livegate.simulator.app import create_simulator_app
sim = create_simulator_app()
held = defaultdict(list)
gc.disable()
async def app(scope, receive, send):
    path = scope.get("path")
    if path == "/_bench/held":
        body = json.dumps(held).encode()
        held.clear()
        gc.collect()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if path != "/webcast/im/fetch/":
        await sim(scope, receive, send)
        return
    t0 = time.perf_counter_ns()
    notes = held[parse_qs(scope["query_string"].decode()).get("room_id", [""])[0]]
    async def timed(message):
        if message["type"] == "http.response.body" and not message.get("more_body"):
            notes.append(time.perf_counter_ns() - t0)
        await send(message)
    await sim(scope, receive, timed)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
"""
# The floor: the least a Python pass-through on the same stack (uvicorn, uvloop, livegate's
# upstream connection pool) adds. No auth, no limits, no checks: it forwards the request line
# and headers verbatim.
FLOOR_MAIN = """
import sys, uvicorn
from livegate.tiktok.connections import ConnectionPool, encode_head, split_url
upstream = sys.argv[2]
pool = ConnectionPool()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    url = upstream + scope["raw_path"].decode() + "?" + scope["query_string"].decode()
    origin, host, target = split_url(url)
    headers = [("Host", host)]
    headers += [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
    head = encode_head(f"GET {target} HTTP/1.1\\r\\n", headers)
    answer = await pool.send(origin, head, connect_timeout=2, read_timeout=10)
    await send({"type": "http.response.start", "status": answer.status,
                "headers": [(b"content-type", b"application/x-protobuf")]})
    await send({"type": "http.response.body", "body": answer.body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False,
            log_level="warning", lifespan="off")
"""
GATEWAY_MAIN = """
import sys, uvicorn
from livegate.app import create_app
from livegate.config import Settings
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]),
            access_log=False, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "livegate_bench_" + secrets.token_hex(4)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Servers:
    sim: str
    gateway: str
    floor: str
    env: dict[str, str]
    pids: dict[str, int]  # by base URL


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> dict[int, tuple[int, int, int]]:
    """Busy, stolen-by-the-host and total jiffies of each CPU so far (Linux /proc/stat)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, values[:8])
            busy = user + nice + system + irq + softirq
            out[int(name[3:])] = (busy, steal, busy + idle + iowait + steal)
    return out


@dataclass
class CpuLoad:
    """How busy a set of CPUs was, summed over the spells `add` was given."""

    busy: int = 0
    steal: int = 0
    total: int = 0

    def add(
        self,
        before: dict[int, tuple[int, int, int]],
        after: dict[int, tuple[int, int, int]],
        cpus: frozenset[int],
    ) -> None:
        for cpu in cpus:
            self.busy += after[cpu][0] - before[cpu][0]
            self.steal += after[cpu][1] - before[cpu][1]
            self.total += after[cpu][2] - before[cpu][2]

    def describe(self) -> str:
        if not self.total:
            return "n/a"
        return f"{100 * self.busy / self.total:.0f}% (steal {100 * self.steal / self.total:.0f}%)"


@dataclass(frozen=True)
class Layout:
    """Which CPUs each side may use. `near` runs livegate, the floor and the load generator;
    `far` runs the simulator. Empty sets: no pinning, everything shares every core."""

    near: frozenset[int] = frozenset()
    far: frozenset[int] = frozenset()

    @classmethod
    def split(cls) -> Layout:
        # In a deployment the gateway has its own machine: TikTok is elsewhere. With the
        # simulator on CPUs of its own, its CPU stays out of the hops' latency, and theirs out
        # of its. The load generator sits with the hops so that every target, direct or not,
        # crosses between the two halves exactly twice per request (to the simulator and
        # back): waking a CPU the host has halted costs a VM milliseconds at p99 (see
        # `idle_polling`), and with the load generator beside the simulator a direct call
        # crossed no boundary while a proxied one crossed four. Measured that way at c=1
        # (100 ms delay, 500-1200 requests), the bare floor proxy's +p99 was +1.50 to +3.88 ms
        # in five runs: the VM's cost, charged to the hop.
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs at least 2 CPUs")
        half = len(cpus) // 2
        return cls(frozenset(cpus[half:]), frozenset(cpus[:half]))

    def describe(self) -> str:
        if not self.near:
            return "unpinned: every process shares every core"
        return (
            f"pinned: livegate, the floor and the load generator on CPUs {sorted(self.near)},"
            f" simulator on {sorted(self.far)}"
        )

    def pin(self, cpus: frozenset[int]) -> dict[str, object]:
        """Popen keyword arguments that start the child on `cpus` (its threads inherit it)."""
        if not cpus:
            return {}
        return {"preexec_fn": lambda: os.sched_setaffinity(0, cpus)}


@contextmanager
def servers(db_url: str, data_dir: Path, layout: Layout) -> Iterator[Servers]:
    sim_port, gw_port, floor_port = free_port(), free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    env = {
        **os.environ,
        "LIVEGATE_DATABASE_URL": db_url,
        "LIVEGATE_DATA_DIR": str(data_dir),
        "LIVEGATE_TIKTOK_URL": sim_url,
        "LIVEGATE_PUBLIC_URL": gw_url,
        "LIVEGATE_RATE_LIMIT_CONNECT": "100000000/minute",
        "LIVEGATE_RATE_LIMIT_CALLS": "100000000/minute",
        "LIVEGATE_LOG_LEVEL": "warning",
        "LIVEGATE_PURGE_INTERVAL": "0",
    }
    env.pop("LIVEGATE_REDIS_URL", None)
    logs = open(data_dir / "servers.log", "w")  # noqa: SIM115
    quiet = {"stdout": logs, "stderr": logs}
    subprocess.run([LIVEGATE, "db", "upgrade"], env=env, check=True, **quiet)  # type: ignore[call-overload]
    on_far, on_near = layout.pin(layout.far), layout.pin(layout.near)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SIM_MAIN, str(sim_port)], env=env, **quiet, **on_far
        ),  # type: ignore[call-overload]
        subprocess.Popen(
            [sys.executable, "-c", GATEWAY_MAIN, str(gw_port)], env=env, **quiet, **on_near
        ),  # type: ignore[call-overload]
        subprocess.Popen(
            [sys.executable, "-c", FLOOR_MAIN, str(floor_port), sim_url],
            env=env,
            **quiet,
            **on_near,
        ),  # type: ignore[call-overload]
    ]
    try:
        wait_http(sim_url + "/_sim/rooms")
        wait_http(gw_url + "/.well-known/oauth-authorization-server")
        wait_http(f"http://127.0.0.1:{floor_port}/")
        floor_url = f"http://127.0.0.1:{floor_port}"
        pids = dict(zip((sim_url, gw_url, floor_url), (p.pid for p in procs), strict=True))
        yield Servers(sim_url, gw_url, floor_url, env, pids)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def idle_polling() -> str:
    """How long an idle vCPU polls before it halts (KVM guests whose cpuidle governor is
    haltpoll).

    A halted vCPU is woken by the host, and a request crosses CPUs on its way: seen on the
    benchmark VM (haltpoll forced, polling set to 0 on its kernel command line), a bare UDP
    round trip between two processes on different CPUs, one every 100 ms, took p50 0.3 ms
    and p99 1.7-5.3 ms, and on one CPU p99 0.3-0.6 ms (1.3 in a noisy spell); with 200 us of
    polling (Linux's default) p99 0.7 ms, and 5.2 ms in a noisy spell. That decides a c=1
    p99 as much as any code on the path.
    """
    try:
        return f"guest halt polling {int(HALT_POLL.read_text()) // 1000} us"
    except (OSError, ValueError):
        return "no haltpoll cpuidle driver"


def cli_json(env: dict[str, str], *args: str) -> dict[str, str]:
    out = subprocess.run([LIVEGATE, *args], env=env, check=True, capture_output=True, text=True)
    data: dict[str, str] = json.loads(out.stdout)
    return data


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads the answer.

    The load generator shares its cores with the hops, so it should cost as little CPU
    per request as it can: httptools' parser on a bare asyncio protocol needs about a third
    of what aiohttp's client did here (0.1 against 0.3 ms; httpx needed 0.7 ms).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.head = b""  # the first bytes of the body, for error messages
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("closed by the server"))

    def on_message_begin(self) -> None:
        self.head, self.size = b"", 0

    def on_body(self, body: bytes) -> None:
        if self.size < 120:
            self.head += body[: 120 - self.size]
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            # An empty body is reported as such (b""), whatever its status.
            self.answer.set_result((self.parser.get_status_code(), self.head))

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    async def send(self, request: bytes, timeout: float) -> tuple[int, bytes]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        async with asyncio.timeout(timeout):
            return await self.answer


async def _connect(target: SplitResult) -> _Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        _Connection, target.hostname or "127.0.0.1", target.port or 80
    )
    return conn


Request = tuple[str, dict[str, str]]  # url, headers


def encode_request(url: str, headers: dict[str, str]) -> bytes:
    target = urlsplit(url)
    request_line = f"GET {target.path or '/'}?{target.query} HTTP/1.1\r\n"
    return encode_head(request_line, [("Host", target.netloc), *headers.items()])


@dataclass
class Sample:
    """What one block of `measure` saw: each worker's latencies in ms, in the order it sent
    them, and the workers whose run was broken by a transport error (their order no longer
    matches what the upstream saw)."""

    by_worker: list[list[float]]
    broken: set[int]

    @property
    def latencies(self) -> list[float]:
        return [v for worker in self.by_worker for v in worker]


async def measure(
    requests: list[Request],
    concurrency: int,
    total: int,
    stagger: float = 0.0,
    ready: Callable[[], object] | None = None,
) -> Sample:
    """`total` GETs from `concurrency` workers, worker i sending `requests[i]` over and over.

    Each worker has its own keep-alive connection, opened (and used once) before the clock
    starts: the numbers are about requests on warm connections, not TCP handshakes queued
    under load. `ready` is called then, just before the clock starts.

    With `stagger` (s), the workers start spread over that time: against an upstream that
    answers after a fixed delay, workers started together would stay in lockstep, and every
    answer would arrive in one burst of `concurrency` that queues behind itself.
    """
    by_worker: list[list[float]] = [[] for _ in range(concurrency)]
    broken: set[int] = set()
    errors: list[str] = []
    target = urlsplit(requests[0][0])
    encoded = [encode_request(url, headers) for url, headers in requests[:concurrency]]
    conns = list(await asyncio.gather(*(_connect(target) for _ in range(concurrency))))
    await asyncio.gather(*(c.send(r, 10) for c, r in zip(conns, encoded, strict=True)))
    if ready is not None:
        ready()
    queue = iter(range(total))
    # The load generator's own garbage waits until the block is over: its full collections
    # took 48-67 ms inside timed blocks at c=64, charged to whichever target was running.
    gc.collect()
    gc.disable()

    async def worker(i: int) -> None:
        await asyncio.sleep(stagger * i / concurrency)
        request, latencies = encoded[i], by_worker[i]
        for _ in queue:
            t0 = time.perf_counter()
            try:
                status, head = await conns[i].send(request, 10)
            except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                # A transport error is an error under load too: count it, reconnect, go on.
                errors.append(f"transport {type(exc).__name__}")
                broken.add(i)
                if (lost := conns[i].transport) is not None:
                    lost.close()
                try:
                    conns[i] = await _connect(target)
                except OSError as again:  # the server is gone: this worker stops, counted
                    errors.append(f"reconnect {type(again).__name__}")
                    return
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200 or not head:
                errors.append(f"{status} {head!r}")
                broken.add(i)  # an answer the upstream may not have seen

    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        gc.enable()
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    if errors:
        where = requests[0][0].split("?")[0]
        print(f"  {where} c={concurrency}: {len(errors)} errors, e.g. {errors[0]}")
    return Sample(by_worker, broken)


def beyond_upstream(sample: Sample, rooms: list[str], held: dict[str, list[int]]) -> list[float]:
    """Each request's latency less the time the simulator held it (ms): what the path to the
    upstream and back cost that very request. Worker i asked for rooms[i] only and in order,
    and the simulator noted each room's requests in the order it got them, so the n-th note
    of a room is the n-th request of its worker. A worker whose count does not match (an
    error broke its run) is left out, and said so."""
    out: list[float] = []
    for i, latencies in enumerate(sample.by_worker):
        notes = held.get(rooms[i], [])
        if i in sample.broken or len(notes) != len(latencies):
            print(f"  worker {i}: {len(latencies)} answers, {len(notes)} upstream notes; left out")
            continue
        out += [ms - ns / 1e6 for ms, ns in zip(latencies, notes, strict=True)]
    return out


def pct(values: list[float], p: float) -> float:
    if not values:  # every request of the target failed: its errors were printed
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def p99_interval(sample: list[float], base: list[float], rng: random.Random) -> tuple[float, float]:
    """95% percentile-bootstrap interval of pct(sample, 99) - pct(base, 99): each side is
    resampled on its own (the two targets' requests are independent of each other)."""
    diffs = sorted(
        pct(rng.choices(sample, k=len(sample)), 99) - pct(rng.choices(base, k=len(base)), 99)
        for _ in range(RESAMPLES)
    )
    return pct(diffs, 2.5), pct(diffs, 97.5)


def upstream_requests(sim: str, logged_in: bool, rooms: list[str]) -> list[Request]:
    """The im/fetch request livegate last sent the simulator (query and header names as sent),
    for each room, to call directly as the baseline: the same request, without livegate in
    between."""
    seen = httpx.get(f"{sim}/_sim/requests", params={"path": "im/fetch"}).json()
    want = "true" if logged_in else "false"
    last = next(r for r in reversed(seen) if r["query"].get("user_is_login") == want)
    headers = {
        "User-Agent": DEFAULT_USER_AGENT,
        "Accept": "application/protobuf, application/json, */*",
        "Accept-Language": "en-US,en;q=0.9",
        "Referer": f"{sim}/",
        "Origin": sim,
    }
    if logged_in:  # a session of another viewer: the simulator does the same work for it
        jar = httpx.post(f"{sim}/_sim/sessions", json={"unique_id": "benchdirect"}).json()
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar["cookies"].items())
    requests = []
    for room in rooms:
        query = {**last["query"], "room_id": room}
        encoded = urlencode([(k, query[k]) for k in last["query_keys"]])
        requests.append((f"{sim}/webcast/im/fetch/?{encoded}", headers))
    return requests


# Each "+" column: the target and the baseline it is compared with.
BASELINE = {
    "floor": "direct",
    "apikey": "direct",
    "token": "direct+session",
    "direct again": "direct",
}


def cell(v: tuple[float, float], sign: str = "") -> str:
    return f"{v[0]:{sign}.2f}/{v[1]:{sign}.2f}".rjust(13)


def print_table(title: str, conc: int, total: int, res: dict[str, list[float]]) -> None:
    """One row of p50/p99 per target with each "+" against its baseline, the noise line and a
    95% bootstrap interval for every "+p99"."""
    p = {name: (pct(v, 50), pct(v, 99)) for name, v in res.items()}

    def added(name: str) -> str:
        base = BASELINE[name]
        return cell((p[name][0] - p[base][0], p[name][1] - p[base][1]), "+")

    print(
        f"{title:<10} | {conc:>4} {total:>5} | {cell(p['direct'])} | {cell(p['floor'])}"
        f" {added('floor')} | {cell(p['apikey'])} {added('apikey')}"
        f" | {cell(p['direct+session'])} | {cell(p['token'])}"
        f" {added('token')}",
        flush=True,
    )
    print(f"{'':>10} | noise: direct again {added('direct again')}")
    rng = random.Random(conc)  # the same data gives the same intervals
    intervals = ", ".join(
        f"{name} [{lo:+.2f}, {hi:+.2f}]"
        for name, base in BASELINE.items()
        for lo, hi in [p99_interval(res[name], res[base], rng)]
    )
    print(f"{'':>10} | +p99, 95% bootstrap interval: {intervals}", flush=True)


def run(db_url: str, label: str, upstream_delay_ms: int, layout: Layout) -> None:
    with tempfile.TemporaryDirectory() as tmp, servers(db_url, Path(tmp), layout) as srv:
        sim, gw, floor, env = srv.sim, srv.gateway, srv.floor, srv.env
        client = cli_json(
            env, "clients", "create", "--name", "bench", "--redirect-uri", REDIRECT,
            "--scope", "webcast:fetch", "--json",
        )  # fmt: skip
        key = cli_json(env, "apikeys", "create", "--client-id", client["client_id"], "--json")
        app = App(client["client_id"], client["client_secret"], REDIRECT)
        token = tokens_for(gw, sim, app, scope="webcast:fetch", unique_id="benchviewer")
        # A room per worker: each worker's requests reach the simulator in the order it sent
        # them, so the simulator's notes by room pair up with the worker's latencies.
        rooms = []
        for i in range(max(LEVELS)):
            room = httpx.post(f"{sim}/_sim/rooms", json={"unique_id": f"benchstreamer{i}"})
            rooms.append(room.json()["room_id"])
            httpx.post(
                f"{sim}/_sim/rooms/{rooms[-1]}/comments", json={"unique_id": "fan", "text": "hi"}
            ).raise_for_status()
        by_key = {"X-Api-Key": key["api_key"]}
        by_token = {"Authorization": f"Bearer {token['access_token']}"}
        gateway = {
            "apikey": [(f"{gw}/webcast/fetch?room_id={room}", by_key) for room in rooms],
            "token": [(f"{gw}/webcast/fetch?room_id={room}", by_token) for room in rooms],
        }
        for requests in gateway.values():
            uvloop.run(measure(requests, 8, WARMUP))
        direct = upstream_requests(sim, False, rooms)
        targets = {
            "direct": direct,
            "floor": [(url.replace(sim, floor, 1), headers) for url, headers in direct],
            "apikey": gateway["apikey"],
            "direct+session": upstream_requests(sim, True, rooms),
            "token": gateway["token"],
            # The same direct call once more: how far apart two runs of one thing land, i.e.
            # the resolution of every "+" column at this level.
            "direct again": direct,
        }
        for name in ("floor", "direct+session"):
            uvloop.run(measure(targets[name], 8, WARMUP))
        if upstream_delay_ms:
            # TikTok answers from across the internet: every im/fetch, direct or through a hop,
            # waits this long at the simulator (asyncio sleep, no CPU).
            httpx.post(
                f"{sim}/_sim/faults", json={"route": "im/fetch", "delay_ms": upstream_delay_ms}
            ).raise_for_status()
        print(
            f"\n## {label}: GET /webcast/fetch, latency in ms (loopback, {sys.platform},"
            f" upstream delay {upstream_delay_ms} ms; {layout.describe()}; {idle_polling()})\n"
            "floor and apikey are compared with `direct` (the anonymous im/fetch livegate sends);\n"
            "token with `direct+session` (the same, signed with a session).\n"
            "`latency`: each request's round trip as the client saw it. `beyond up`: the same\n"
            "less the time the simulator held that very request, i.e. the path to it and back.",
            flush=True,
        )
        print(
            f"{'':>10} | {'conc':>4} {'n':>5} | {'direct':>13} | {'floor':>13} {'+':>13} |"
            f" {'apikey':>13} {'+':>13} | {'direct+s':>13} | {'token':>13} {'+':>13}\n"
            f"{'':>10} | {'':>10} |{' p50/p99':>14} |"
            + f"{' p50/p99':>14}{' p50/p99':>14} |" * 2
            + f"{' p50/p99':>14} |"
            + f"{' p50/p99':>14}{' p50/p99':>14}"
        )
        near = layout.near or frozenset(os.sched_getaffinity(0))
        halves = {"near": near, "far": layout.far} if layout.far else {"all": near}

        def take_held() -> dict[str, list[int]]:
            """The simulator's notes since the last call, by room (and it forgets them)."""
            held: dict[str, list[int]] = httpx.get(f"{sim}/_bench/held").json()
            return held

        for conc, total in LEVELS.items():
            if upstream_delay_ms:  # at most ~30 s per target: the delay bounds the request rate
                total = min(total, max(MIN_DELAYED, conc * 30_000 // upstream_delay_ms))
            res: dict[str, list[float]] = {name: [] for name in targets}
            beyond: dict[str, list[float]] = {name: [] for name in targets}
            cpu = dict.fromkeys(targets, 0.0)  # CPU of the process that answered the client
            # How busy each half of the machine was while a target was measured: near 100%,
            # the "+" columns measure a queue, not the hop.
            load = {name: {half: CpuLoad() for half in halves} for name in targets}
            # Interleaved in rounds, so a slow spell of the machine hits every target alike.
            for _ in range(ROUNDS):
                for name, requests in targets.items():
                    url = requests[0][0]
                    pid = next(pid for base, pid in srv.pids.items() if url.startswith(base + "/"))
                    uvloop.run(measure(requests, 1, BLOCK_WARMUP))
                    before = cpu_seconds(pid)
                    jiffies = cpu_jiffies()
                    sample = uvloop.run(
                        measure(
                            requests, conc, total // ROUNDS, upstream_delay_ms / 1000, take_held
                        )
                    )
                    cpu[name] += cpu_seconds(pid) - before
                    jiffies_after = cpu_jiffies()
                    for half, cpus in halves.items():
                        load[name][half].add(jiffies, jiffies_after, cpus)
                    res[name] += sample.latencies
                    beyond[name] += beyond_upstream(sample, rooms, take_held())
            print_table("latency", conc, total, res)
            print_table("beyond up", conc, total, beyond)
            per_request = {n: round(1e6 * cpu[n] / len(res[n])) for n in targets}
            print(f"{'':>10} | CPU per request of the answering process (µs): {per_request}")
            busy = "; ".join(
                f"{name} " + ", ".join(f"{half} {v.describe()}" for half, v in load[name].items())
                for name in targets
            )
            print(f"{'':>10} | CPU busy by half while measured: {busy}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="SERVER_URL", help="benchmark on PostgreSQL")
    parser.add_argument("--sqlite", action="store_true", help="also/only SQLite (default)")
    parser.add_argument(
        "--levels", default="1,16,64", help="concurrency levels, comma-separated (default 1,16,64)"
    )
    parser.add_argument(
        "--upstream-delay-ms",
        type=int,
        default=0,
        help="the simulator waits this long before answering each im/fetch (default 0)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run livegate, the floor and this load generator on half of the CPUs, the"
        " simulator on the other half (TikTok on a machine of its own)",
    )
    args = parser.parse_args()
    layout = Layout.split() if args.pin else Layout()
    if layout.near:
        os.sched_setaffinity(0, layout.near)  # the load generator, and the CLI calls it makes
    levels = {int(c) for c in args.levels.split(",")}
    for conc in list(LEVELS):
        if conc not in levels:
            del LEVELS[conc]
    if args.sqlite or not args.postgres:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", "SQLite", args.upstream_delay_ms, layout)
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            run(url, "PostgreSQL", args.upstream_delay_ms, layout)


if __name__ == "__main__":
    main()
