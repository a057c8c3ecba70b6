"""The managed event stream (`GET /webcast/events`) under load: simulated rooms emitting at a
set rate, several subscribers on each, binary push frames or `format=json`. Delivered events/s,
gateway CPU per delivered event, latency from the simulator's send (the first push frame that
carried the event) to the subscriber's receive, gateway RSS per open subscriber, and lost events.

Starts `livegate simulator` and `livegate serve` from a checkout (`--livegate`) on a fresh data
dir for each format and drives them only through the CLI and HTTP, so one copy of this script
measures any version. Subscribers are Python `websockets` clients in `--clients` processes of
this script. See docs/benchmarks.md, "Managed event stream".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

import webcast_fetch
from webcast_fetch import cli_json, cpu_seconds, running


def rss_kib(pid: int) -> int:
    """VmRSS of a process and its live descendants (`serve` and its workers), in KiB."""
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        pids += [int(child) for child in children]
    return total


# -- the load side: one process holds its share of the subscribers -----------------------------


QUIET = 3.0


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        value, shift, i = value | (b & 0x7F) << shift, shift + 7, i + 1
        if b < 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: varints and length-delimited only,
    which is all the fields read here are (fixed-width ones are skipped)."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((key >> 3, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            out.append((key >> 3, buf[i : i + size]))
            i += size
        else:
            i += 8 if wire == 1 else 4
    return out


def from_frame(data: bytes) -> list[int]:
    """The msg_id of each message in a WebcastPushFrame (payload: field 8) of a fetch result
    (messages: 1) of BaseProtoMessages (msg_id: 3). Read from the wire: the proto classes'
    decoding costs more than the gateway's sending, and the load side must not be the limit."""
    payload = next(v for n, v in _fields(data) if n == 8)
    return [
        dict(_fields(message))[3]  # type: ignore[arg-type, misc]
        for number, message in _fields(payload)  # type: ignore[arg-type]
        if number == 1
    ]


def from_text(text: str) -> list[int]:
    """The msg_id of each event of a JSON frame (a bundle or one event)."""
    value = json.loads(text)
    events = value.get("messages", [value])
    return [
        int(common["msg_id"])
        for e in events
        if e.get("type") != "roomInfo" and (common := e["data"].get("common"))
    ]


async def subscriber(url: str, room: str, gate: asyncio.Semaphore, out: dict[str, Any]) -> None:
    import websockets

    ids, lat = out.setdefault("ids", []), out.setdefault("lat", [])
    out["room"] = room
    async with gate:
        ws = await websockets.connect(url, max_size=None, ping_interval=None, compression=None)
        await ws.recv()  # the room info
    out["ready"] = True
    try:
        async for message in ws:
            out["last"] = now = time.time()
            for msg_id in from_text(message) if isinstance(message, str) else from_frame(message):
                ids.append(msg_id)
                lat.append((now, msg_id))
    except websockets.ConnectionClosed as exc:
        out["closed"] = exc.rcvd.code if exc.rcvd else 1006


async def client(args: argparse.Namespace) -> None:
    rooms = args.client.split(",")
    gate = asyncio.Semaphore(32)
    subs: list[dict[str, Any]] = [{} for _ in rooms for _ in range(args.per_room)]
    query = {"features.closeInactiveWebSocketAfter": "3600"}
    if args.format == "json":
        query["format"] = "json"
    keys = args.key.split(",")  # a room's subscribers take them in turn
    each = [(r, keys[i % len(keys)]) for r in rooms for i in range(args.per_room)]
    tasks = [
        asyncio.create_task(
            subscriber(
                f"{args.gw}?{urlencode({**query, 'uniqueId': room, 'apiKey': key})}",
                room,
                gate,
                out,
            )
        )
        for (room, key), out in zip(each, subs, strict=True)
    ]
    while sum("ready" in s for s in subs) + sum(t.done() for t in tasks) < len(subs):
        await asyncio.sleep(0.2)
    print(json.dumps({"ready": sum("ready" in s for s in subs)}), flush=True)
    t0, t1 = map(float, (await asyncio.to_thread(sys.stdin.readline)).split())
    # msg_id: when the simulator first pushed it (its log), where latency starts.
    sent = {int(k): v for k, v in json.loads(await asyncio.to_thread(sys.stdin.readline)).items()}
    # What the gateway still holds arrives first: until nothing came for QUIET seconds.
    deadline = time.time() + 120
    while time.time() < deadline and max(s.get("last", 0) for s in subs) > time.time() - QUIET:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    window = [
        at * 1000 - sent[msg_id]
        for s in subs
        for at, msg_id in s.get("lat", ())
        if t0 <= at < t1 and msg_id in sent
    ]
    result = {
        "in_window": len(window),
        "latencies": window,
        "subs": [{k: s.get(k) for k in ("room", "ids", "closed")} for s in subs],
    }
    print(json.dumps(result), flush=True)


# -- the run ------------------------------------------------------------------------------------


def environment(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    """webcast_fetch's (fresh data dir, quiet logs, no rate limits), and room for every
    subscriber on the one API key."""
    env = webcast_fetch.environment(args, tmp)
    env["LIVEGATE_EVENTS_MAX_STREAMS_PER_KEY"] = str(args.rooms * args.per_room + 10)
    return env


def start_clients(args: argparse.Namespace, gw: str, key: str, fmt: str, rooms: list[str]) -> Any:
    url = gw.replace("http://", "ws://") + "/webcast/events"
    procs = []
    for part in range(args.clients):
        mine = rooms[part :: args.clients]
        cmd = [sys.executable, __file__, "--client", ",".join(mine), "--gw", url, "--key", key]
        cmd += ["--format", fmt, "--per-room", str(args.per_room)]
        procs.append(
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    ready = sum(json.loads(p.stdout.readline() or '{"ready": 0}')["ready"] for p in procs)  # type: ignore[union-attr]
    return procs, ready


def set_activity(http: httpx.Client, sim: str, rooms: list[str], rate: float) -> None:
    """All rooms at once: one by one, a busy simulator would take minutes to stop them."""

    def one(room_id: str) -> None:
        url = f"{sim}/_sim/rooms/{room_id}/activity"
        http.post(url, json={"rate_per_s": rate}).raise_for_status()

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, rooms))


def measure(args: argparse.Namespace, exe: str, fmt: str, tmp: Path) -> dict[str, Any]:
    env = environment(args, tmp)
    with running(exe, "simulator", env, tmp) as (sim, sim_pid):
        env["LIVEGATE_TIKTOK_URL"] = sim
        with (
            running(exe, "serve", env, tmp) as (gw, pid),
            httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32)) as http,
        ):
            key = ",".join(
                cli_json(exe, env, "apikeys", "create")["api_key"] for _ in range(args.keys)
            )
            rooms: dict[str, str] = {}
            for i in range(args.rooms):
                room = http.post(f"{sim}/_sim/rooms", json={"unique_id": f"benchroom{i}"}).json()
                rooms[room["unique_id"]] = room["room_id"]
            rss_base = rss_kib(pid)
            procs, ready = start_clients(args, gw, key, fmt, list(rooms))
            time.sleep(2)
            rss_idle = rss_kib(pid)
            set_activity(http, sim, list(rooms.values()), args.rate)
            t0 = time.time() + args.warmup
            time.sleep(args.warmup)
            pids = {"gw": [pid], "sim": [sim_pid], "load": [p.pid for p in procs]}
            cpu0 = {k: [cpu_seconds(p) for p in v] for k, v in pids.items()}
            time.sleep(max(0.0, t0 + args.duration - time.time()))
            cpu = {
                k: [cpu_seconds(p) - c for p, c in zip(v, cpu0[k], strict=False)]
                for k, v in pids.items()
            }
            t1 = time.time()
            rss_load = rss_kib(pid)
            set_activity(http, sim, list(rooms.values()), 0)
            time.sleep(args.drain)
            logs = {u: http.get(f"{sim}/_sim/rooms/{r}/events").json() for u, r in rooms.items()}
            sent = {e["msg_id"]: e["sent_ms"] for log in logs.values() for e in log if e["sent_ms"]}
            order = f"{t0} {t1}\n{json.dumps(sent)}\n"
            results = [json.loads(p.communicate(order, timeout=300)[0]) for p in procs]
    latencies = sorted(ms for r in results for ms in r["latencies"])
    delivered = sum(r["in_window"] for r in results)
    emitted = {u: {int(e["msg_id"]) for e in log} for u, log in logs.items()}
    in_window = [
        e for log in logs.values() for e in log if t0 * 1000 <= e["created_ms"] < t1 * 1000
    ]
    # How late the simulator itself pushed what it made: not the gateway's latency.
    lag = sorted(e["sent_ms"] - e["created_ms"] for e in in_window if e["sent_ms"])
    lost = dup = closed = 0
    for sub in (s for r in results for s in r["subs"]):
        got = sub["ids"] or []
        lost += len(emitted[sub["room"]] - set(got))
        dup += len(got) - len(set(got))
        closed += sub["closed"] is not None
    subs = args.rooms * args.per_room

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
            if latencies
            else float("nan")
        )

    window = t1 - t0
    return {
        "format": fmt,
        "subscribers": ready,
        "of": subs,
        "emitted": sum(map(len, emitted.values())),
        "emitted_per_s": len(in_window) / (t1 - t0),
        "delivered_per_s": delivered / window,
        "expected_per_s": subs * args.rate,
        "cpu_us_per_event": 1e6 * cpu["gw"][0] / max(delivered, 1),
        "gw_cores": cpu["gw"][0] / window,
        "sim_cores": cpu["sim"][0] / window,
        "load_cores": [c / window for c in cpu["load"]],
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "sim_lag_p99_ms": lag[min(len(lag) - 1, int(0.99 * len(lag)))] if lag else float("nan"),
        "kib_per_sub_idle": (rss_idle - rss_base) / max(ready, 1),
        "kib_per_sub_load": (rss_load - rss_base) / max(ready, 1),
        "rss_base_mib": rss_base / 1024,
        "lost": lost,
        "duplicates": dup,
        "closed_early": closed,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    heads = ["format", "subs", "emitted/s", "delivered/s", "CPU µs/ev", "gw cores", "sim cores"]
    heads += ["p50", "p99", "max", "sim lag", "KiB/sub", "(load)", "lost", "dup", "closed"]
    heads += ["load cores"]
    widths = (-7, 6, 10, 12, 10, 9, 10, 8, 8, 8, 9, 8, 8, 7, 5, 7)
    print(
        "".join(
            f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(heads[:-1], widths, strict=True)
        ),
        end="",
    )
    print("  " + heads[-1])
    for r in rows:
        load = "+".join(f"{c:.2f}" for c in r["load_cores"])
        print(
            f"{r['format']:<7}{r['subscribers']:>6}{r['emitted_per_s']:10.0f}"
            f"{r['delivered_per_s']:12.0f}{r['cpu_us_per_event']:10.0f}{r['gw_cores']:9.2f}"
            f"{r['sim_cores']:10.2f}{r['p50_ms']:8.1f}{r['p99_ms']:8.1f}{r['max_ms']:8.0f}"
            f"{r['sim_lag_p99_ms']:9.0f}"
            f"{r['kib_per_sub_idle']:8.1f}{r['kib_per_sub_load']:8.1f}"
            f"{r['lost']:>7}{r['duplicates']:>5}{r['closed_early']:>7}  {load}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    checkout = Path(__file__).resolve().parent.parent
    parser.add_argument("--livegate", type=Path, default=checkout, help="checkout to measure")
    parser.add_argument("--rooms", type=int, default=200, help="simulated rooms (default 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="events/s per room (default 5)")
    parser.add_argument("--per-room", type=int, default=10, help="subscribers per room (10)")
    parser.add_argument("--keys", type=int, default=1, help="API keys per room (default 1)")
    parser.add_argument("--formats", default="binary,json", help="default binary,json")
    parser.add_argument("--clients", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--duration", type=int, default=60, help="s measured (default 60)")
    parser.add_argument("--warmup", type=int, default=5, help="s of events before (default 5)")
    parser.add_argument("--drain", type=float, default=3.0, help="s after the events stop (3)")
    parser.add_argument("--workers", type=int, help="serve's workers (default: its own)")
    parser.add_argument("--database-url", help="an empty database to use instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # a load process: its rooms
    parser.add_argument("--gw", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        # On uvloop, as the gateway's workers run (uvicorn takes it when installed): the load
        # processes share the machine's two cores with the gateway, and on asyncio's own loop
        # they used about as much CPU per delivered event as the gateway.
        import uvloop

        uvloop.run(client(args))
        return
    if args.rate * (args.warmup + args.duration + args.drain) > 1900:
        raise SystemExit("the simulator keeps 2000 events per room: shorten --duration")
    exe = str(args.livegate.resolve() / ".venv" / "bin" / "livegate")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} is missing: run `make venv` in {args.livegate}")
    git = ["git", "-C", str(args.livegate), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    for fmt in args.formats.split(","):
        with tempfile.TemporaryDirectory(prefix="livegate-bench-") as tmp:
            rows.append(measure(args, exe, fmt, Path(tmp)))
    if args.json:
        print(json.dumps({"commit": commit, "rows": rows}))
        return
    print(
        f"livegate {args.livegate.resolve()} @ {commit}: {args.rooms} rooms x {args.rate:g}"
        f" events/s, {args.per_room} subscribers each on {args.keys} API key(s),"
        f" {args.clients} load processes,"
        f" {args.duration} s measured after {args.warmup} s, workers {args.workers or 'default'},"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
        "emitted/s: all rooms, by the simulator's log; delivered/s: events received by all"
        " subscribers; CPU per delivered event and cores: the gateway's (serve and its workers);"
        " latency ms from the simulator's send to receive (sim lag: p99 from making an event to"
        " sending it, the simulator's own delay); KiB/sub: gateway RSS growth per open subscriber,"
        " idle and after the load; lost, dup: events per subscriber against the room's log"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
