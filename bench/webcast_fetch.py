"""What livegate adds to `GET /webcast/fetch`: latency (p50/p99) and gateway CPU per request,
against the simulator's im/fetch called directly, with wrk as the load generator.

Starts `livegate simulator` and `livegate serve` from a checkout (`--livegate`) on a fresh data
dir and drives them only through the CLI and HTTP contracts, so that one copy of this script
measures any version. See docs/benchmarks.md. Needs wrk: `apt-get install wrk`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

REDIRECT = "http://127.0.0.1:9/callback"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# The anonymous im/fetch livegate sends upstream (tiktok/webcast.py), written out here so that
# every version is compared with the same direct call.
FETCH_QUERY = urlencode({"browser_version": UA.partition("/")[2]}) + (
    "&aid=1988&app_language=en&app_name=tiktok_web&browser_language=en-US&browser_name=Mozilla"
    "&browser_online=true&browser_platform=Win32&channel=tiktok_web&cookie_enabled=true"
    "&data_collection_enabled=true&device_platform=web_pc&focus_state=true&from_page="
    "&history_len=4&is_fullscreen=false&is_page_visible=true&os=windows&priority_region=US"
    "&region=US&screen_height=1080&screen_width=1920&tz_name=America%2FNew_York"
    "&webcast_language=en&user_is_login=false&room_id={room}&cursor=&internal_ext="
    "&resp_content_type=protobuf&did_rule=3&fetch_rule=1&last_rtt=0&live_id=12"
    "&version_code=180800&webcast_sdk_version=1.3.0&update_version_code=1.3.0&client_enter=1"
)


@contextmanager
def running(exe: str, command: str, env: dict[str, str], tmp: Path) -> Iterator[tuple[str, int]]:
    """`livegate <command> --port P` on a free port: its base URL and pid, until stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (tmp / f"{command}.log").open("w") as log:
        proc = subprocess.Popen(
            [exe, command, "--port", str(port)], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"{command} did not come up:\n{(tmp / f'{command}.log').read_text()}")
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def cli_json(exe: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run([exe, *args, "--json"], env=env, check=True, capture_output=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def sign_in(gw: str, sim: str, client_id: str, secret: str) -> str:
    """An access token through the QR flow, the phone's part played by the simulator."""
    uid = httpx.post(f"{sim}/_sim/accounts", json={"unique_id": "benchviewer"}).json()["uid"]
    browser = httpx.Client(base_url=gw, timeout=10)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT}
    page = browser.get("/tiktok/oauth/authorize", params={**query, "scope": "webcast:fetch"})
    login = re.search(r'/tiktok/oauth/login/([^/"]+)/start', page.text)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if not (login and csrf):
        raise RuntimeError(f"no sign-in form on the consent page ({page.status_code})")
    browser.post(f"/tiktok/oauth/login/{login[1]}/start", data={"csrf_token": csrf[1]})
    qr = httpx.get(f"{sim}/_sim/qr").json()[0]["token"]
    for step, until in (("scan", "scanned"), ("confirm", "done")):
        httpx.post(f"{sim}/_sim/qr/{qr}/{step}", json={"uid": uid}).raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = browser.get(f"/tiktok/oauth/login/{login[1]}/status").json()
            if status.get("status") == until:
                break
            time.sleep(0.2)
    code = re.search(r"[?&]code=([^&]+)", status.get("redirect") or "")
    if code is None:
        raise RuntimeError(f"the sign-in did not finish: {status.get('status')}")
    grant = {"grant_type": "authorization_code", "code": code[1], "redirect_uri": REDIRECT}
    r = httpx.post(f"{gw}/tiktok/oauth/token", data=grant, auth=(client_id, secret))
    token: str = r.raise_for_status().json()["access_token"]
    return token


def cpu_seconds(pid: int) -> float:
    """utime + stime so far of a process and its live descendants (Linux /proc): `serve` and
    its workers."""
    total, pids = 0.0, [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pids += [int(child) for child in children]
    return total


def wrk(url: str, headers: dict[str, str], conc: int, secs: int) -> dict[str, Any]:
    """One closed-loop run of wrk: `conc` keep-alive connections for `secs` seconds."""
    cmd = ["wrk", f"-t{min(conc, 2)}", f"-c{conc}", f"-d{secs}s", "--latency", "--timeout", "10s"]
    cmd += [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    out = subprocess.run([*cmd, url], capture_output=True, text=True).stdout

    def grab(pattern: str) -> tuple[str, ...]:
        if (found := re.search(pattern, out, re.M)) is None:
            raise SystemExit(f"unexpected wrk output (no {pattern!r}):\n{out}")
        return found.groups()

    row: dict[str, Any] = {"rps": float(grab(r"Requests/sec:\s+([\d.]+)")[0])}
    for p in (50, 99):
        value, unit = grab(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$")
        row[f"p{p}"] = float(value) * UNITS[unit]
    row["requests"] = int(grab(r"(\d+) requests in")[0])
    errors = re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", out)
    return row | {"errors": sum(map(int, errors))}


def environment(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    """A fresh data dir, quiet logs and no rate limits; none of the caller's LIVEGATE_* knobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
    env |= {"LIVEGATE_DATA_DIR": str(tmp), "LIVEGATE_LOG_LEVEL": "warning"}
    if args.workers:  # otherwise serve's default: one worker per core
        env["LIVEGATE_WORKERS"] = str(args.workers)
    for limit in ("CONNECT", "CALLS"):  # the whole load comes from one key and one token
        env[f"LIVEGATE_RATE_LIMIT_{limit}"] = "1000000000/minute"
    if args.database_url:
        env["LIVEGATE_DATABASE_URL"] = args.database_url
    return env


def measure(args: argparse.Namespace, exe: str, tmp: Path) -> list[dict[str, Any]]:
    env = environment(args, tmp)
    with running(exe, "simulator", env, tmp) as (sim, _):
        env["LIVEGATE_TIKTOK_URL"] = sim
        with running(exe, "serve", env, tmp) as (gw, pid):
            return measure_targets(args, exe, env, sim, gw, pid)


def measure_targets(
    args: argparse.Namespace, exe: str, env: dict[str, str], sim: str, gw: str, pid: int
) -> list[dict[str, Any]]:
    scope = ["--scope", "webcast:fetch", "--redirect-uri", REDIRECT]
    client = cli_json(exe, env, "clients", "create", "--name", "bench", *scope)
    key = cli_json(exe, env, "apikeys", "create")["api_key"]
    room = httpx.post(f"{sim}/_sim/rooms", json={"unique_id": "benchstreamer"}).json()["room_id"]
    fetch = f"{gw}/webcast/fetch?" + (
        "unique_id=benchstreamer" if args.unique_id else f"room_id={room}"
    )
    upstream = {"User-Agent": UA, "Accept": "application/protobuf, application/json, */*"}
    upstream |= {"Accept-Language": "en-US,en;q=0.9", "Referer": f"{sim}/", "Origin": sim}
    targets = {
        "direct": (f"{sim}/webcast/im/fetch/?" + FETCH_QUERY.format(room=room), upstream),
        "apikey": (fetch, {"X-Api-Key": key}),
    }
    try:
        token = sign_in(gw, sim, client["client_id"], client["client_secret"])
        targets["token"] = (fetch, {"Authorization": f"Bearer {token}"})
    except (RuntimeError, httpx.HTTPError, KeyError, IndexError) as exc:
        print(f"note: no access token ({exc}); no token rows", file=sys.stderr)
    if args.upstream_delay_ms:
        fault = {"route": "im/fetch", "delay_ms": args.upstream_delay_ms}
        httpx.post(f"{sim}/_sim/faults", json=fault).raise_for_status()
    rows = []
    for conc in args.concurrency:
        for name, (url, headers) in targets.items():
            wrk(url, headers, conc, args.warmup)
            before = cpu_seconds(pid)
            row = {"concurrency": conc, "target": name, **wrk(url, headers, conc, args.duration)}
            cpu = cpu_seconds(pid) - before
            row["cpu_us"] = None if name == "direct" else 1e6 * cpu / max(row["requests"], 1)
            rows.append(row)
            print(f"  c={conc} {name}: {row['requests']} requests", file=sys.stderr)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    heads = ("conc", "target", "req/s", "p50", "p99", "+p50", "+p99", "CPU µs/req", "errors")
    print("{:>4} {:<7}{:>8}{:>8}{:>8}{:>8}{:>8}{:>12}{:>8}".format(*heads))
    base = {r["concurrency"]: r for r in rows if r["target"] == "direct"}
    for r in rows:
        b = base[r["concurrency"]]
        added = "".join(f"{r[p] - b[p]:+8.2f}" if r is not b else " " * 8 for p in ("p50", "p99"))
        cpu = "-" if r["cpu_us"] is None else f"{r['cpu_us']:.0f}"
        print(
            f"{r['concurrency']:>4} {r['target']:<7}{r['rps']:8.1f}{r['p50']:8.2f}{r['p99']:8.2f}"
            f"{added}{cpu:>12}{r['errors']:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    checkout = Path(__file__).resolve().parent.parent
    parser.add_argument("--livegate", type=Path, default=checkout, help="checkout to measure")
    parser.add_argument("--upstream-delay-ms", type=int, default=100, help="default 100")
    parser.add_argument("--duration", type=int, default=15, help="s per cell (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="s before each (default 3)")
    parser.add_argument("--concurrency", default="1,16,64", help="levels (default 1,16,64)")
    parser.add_argument("--unique-id", action="store_true", help="ask by unique_id (a lookup)")
    parser.add_argument("--workers", type=int, help="serve's workers (default: its own)")
    parser.add_argument("--database-url", help="an empty database to use instead of SQLite")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (Debian/Ubuntu), brew install wrk")
    exe = str(args.livegate.resolve() / ".venv" / "bin" / "livegate")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} is missing: run `make venv` in {args.livegate}")
    git = ["git", "-C", str(args.livegate), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    # A terminated run still stops its servers and removes its data dir.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="livegate-bench-") as tmp:
        rows = measure(args, exe, Path(tmp))
    if args.json:
        print(json.dumps({"commit": commit, "delay_ms": args.upstream_delay_ms, "rows": rows}))
        return
    print(
        f"livegate {args.livegate.resolve()} @ {commit}, upstream delay {args.upstream_delay_ms}"
        f" ms, {args.duration} s per cell, workers {args.workers or 'default'},"
        f" {os.cpu_count()} CPUs, {os.uname().release}\n"
        "latency in ms; + is against direct; CPU is the gateway's (all workers), per request"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
