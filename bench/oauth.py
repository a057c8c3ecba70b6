"""Refresh grants and introspections per second at livegate's OAuth endpoints, against
django-oauth-toolkit (DOT) 3.4.1 on the same PostgreSQL, alternating in one run, with wrk.

Starts `livegate simulator` and `livegate serve` from a checkout (`--livegate`), and DOT under
gunicorn from a venv of its own (made on first use), each on a database it creates and drops;
livegate is driven only through its CLI and HTTP, so one copy of this script measures any
version. Statements per request are counted in PostgreSQL's log (`log_statement = 'all'` set on
the bench databases only, for one phase). See docs/benchmarks.md. Needs wrk, and PostgreSQL
with a superuser that the `--postgres` URL reaches.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REDIRECT = "http://127.0.0.1:9/callback"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
# The simulator, like TikTok, refuses a QR login's polls less than 0.5 s apart.
QR_POLL = 0.6
INTROSPECTED = 16  # access tokens the introspection load cycles through
DOT_PACKAGES = ["django-oauth-toolkit==3.4.1", "django", "gunicorn", "psycopg[binary]"]
WORKLOADS = ("refresh", "introspect")

# One wrk thread per connection, so that a thread's state is its connection's: `refresh`
# follows the thread's own rotation chain (each answer's refresh token is sent next),
# `introspect` cycles through the access tokens.
LUA = """\
local tokens, mode, n, i = {}, os.getenv("BENCH_MODE"), 0, 0
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
function setup(thread) n = n + 1; thread:set("id", n) end
function init(args) token, i = tokens[id], id; wrk.method = "POST" end
function request()
  if mode == "refresh" then
    return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
  end
  i = i % #tokens + 1
  return wrk.format(nil, nil, nil, "token=" .. tokens[i])
end
if mode == "refresh" then
  function response(status, headers, body)
    token = body:match('"refresh_token"%s*:%s*"([^"]+)"') or token
  end
end
"""

DJANGO_SETTINGS = """\
SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"]
MIDDLEWARE = []
ROOT_URLCONF = "urls"
USE_TZ = True
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": None,
    "NAME": {dbname!r}, "HOST": {host!r}, "PORT": {port!r}, "USER": {user!r},
    "PASSWORD": {password!r}}}}}
OAUTH2_PROVIDER = {{"ROTATE_REFRESH_TOKEN": True, "REFRESH_TOKEN_REUSE_PROTECTION": True}}
"""
DJANGO_URLS = """\
from django.urls import include, path
urlpatterns = [path("o/", include("oauth2_provider.urls"))]
"""
# Run by `django shell -c`: the application (secret unhashed) and n users, each with an access
# token and its refresh token (of its own family, for the reuse protection).
DJANGO_SEED = """\
import json, secrets, uuid
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken
app = Application.objects.create(
    name="bench", client_id="bench", client_secret={secret!r}, hash_client_secret=False,
    client_type="confidential", authorization_grant_type="authorization-code",
    redirect_uris={redirect!r})
pairs = []
for i in range({n}):
    user = User.objects.create(username=f"u{{i}}")
    at = AccessToken.objects.create(user=user, application=app, scope="read",
        token=secrets.token_urlsafe(30), expires=timezone.now() + timedelta(hours=10))
    rt = RefreshToken.objects.create(user=user, application=app, access_token=at,
        token=secrets.token_urlsafe(30), token_family=uuid.uuid4())
    pairs.append((at.token, rt.token))
print(json.dumps(pairs))
"""


@dataclass
class Server:
    name: str
    url: str
    token_path: str
    introspect_path: str
    auth: tuple[str, str]
    db: str
    pid: int = 0

    def basic(self) -> str:
        return "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(check: Callable[[], Any], what: str, every: float = 0.05, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def grab(pattern: str, text: str) -> str:
    if (found := re.search(pattern, text, re.M)) is None:
        raise RuntimeError(f"no {pattern!r} in:\n{text[:2000]}")
    return found[1]


@contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[int]:
    """A server started with `cmd`, once it answers HTTP on `port`: its pid, until stopped."""
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)

    def answers() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"{log.stem} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)  # any answer will do
        except httpx.TransportError:
            return False
        return True

    try:
        poll(answers, log.stem)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def sql(conninfo: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


@contextmanager
def databases(admin: str, *names: str) -> Iterator[None]:
    for name in names:
        sql(admin, f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        for name in names:
            sql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def statement_logging(admin: str, *names: str) -> Iterator[None]:
    """`log_statement = 'all'` for sessions that open on these databases meanwhile."""
    for name in names:
        sql(admin, f"ALTER DATABASE {name} SET log_statement = 'all'")
    try:
        yield
    finally:
        for name in names:
            sql(admin, f"ALTER DATABASE {name} RESET log_statement")


def count_statements(
    admin: str, log: Path, db: str, action: Callable[[], object], times: int
) -> float:
    """Statements the server logged for `db` per call of `action`, after two untimed calls."""
    for _ in range(2):
        action()
    start = log.stat().st_size
    for _ in range(times):
        action()
    marker = f"bench-mark-{secrets.token_hex(8)}"
    sql(make_conninfo(admin, dbname=db), f"SELECT '{marker}'")

    def logged() -> str:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        return text[: text.index(marker)].rpartition("\n")[0] if marker in text else ""

    text = poll(logged, "the statement log")
    found = re.findall(rf"@{db} LOG:  (?:statement|execute [^:]*): ", text)
    return len(found) / times


def reached(browser: httpx.Client, login: str, status: str) -> dict[str, Any] | None:
    """The pending sign-in's state, once it has reached `status`."""
    body: dict[str, Any] = browser.get(f"/tiktok/oauth/login/{login}/status").json()
    return body if body.get("status") == status else None


def sign_in(gw: str, sim: str, client: dict[str, str], n: int) -> tuple[str, str]:
    """An access and a refresh token for a new simulator account: consent page, QR sign-in
    (the phone's part played through /_sim), code exchange."""
    account = httpx.post(f"{sim}/_sim/accounts", json={"unique_id": f"bench{n}"})
    uid = account.raise_for_status().json()["uid"]
    with httpx.Client(base_url=gw, timeout=30) as browser:
        query = {"response_type": "code", "client_id": client["client_id"]}
        query |= {"redirect_uri": REDIRECT, "scope": "webcast:fetch"}
        page = browser.get("/tiktok/oauth/authorize", params=query).text
        login = grab(r'/tiktok/oauth/login/([^/"]+)/start', page)
        form = {"csrf_token": grab(r'name="csrf_token" value="([^"]+)"', page)}
        qr_page = browser.post(f"/tiktok/oauth/login/{login}/start", data=form).headers["location"]
        qr = grab(r'id="qr-link" href="[^"]*[?&;]token=([^&"]+)', browser.get(qr_page).text)
        status: dict[str, Any] = {}
        for step, until in (("scan", "scanned"), ("confirm", "done")):
            httpx.post(f"{sim}/_sim/qr/{qr}/{step}", json={"uid": uid}).raise_for_status()
            # Each status request after the interval makes the gateway poll the simulator once.
            time.sleep(QR_POLL)
            status = poll(partial(reached, browser, login, until), f"sign-in {until}", QR_POLL)
        grant = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
        grant["code"] = grab(r"[?&]code=([^&]+)", status["redirect"])
        auth = (client["client_id"], client["client_secret"])
        body = browser.post("/tiktok/oauth/token", data=grant, auth=auth).raise_for_status().json()
        return body["access_token"], body["refresh_token"]


def wrk(server: Server, workload: str, tokens: list[str], conc: int, secs: int, tmp: Path) -> Any:
    """One closed-loop wrk run; the tokens are the chains' first (refresh) or the cycle."""
    (tmp / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (tmp / "bench.lua").write_text(LUA)
    env = os.environ | {"BENCH_MODE": workload, "BENCH_TOKENS": str(tmp / "tokens.txt")}
    path = server.token_path if workload == "refresh" else server.introspect_path
    cmd = ["wrk", f"-t{conc}", f"-c{conc}", f"-d{secs}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", str(tmp / "bench.lua"), "-H", f"Authorization: {server.basic()}"]
    cmd += ["-H", "Content-Type: application/x-www-form-urlencoded", server.url + path]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    out = done.stdout + done.stderr
    row: dict[str, Any] = {"rps": float(grab(r"Requests/sec:\s+([\d.]+)", out))}
    for p in (50, 99):
        latency = grab(rf"^\s+{p}%\s+([\d.]+(?:us|ms|s|m))\s*$", out)
        value = latency.rstrip("ums")
        row[f"p{p}"] = float(value) * UNITS[latency[len(value) :]]
    errors = re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", out)
    return row | {"errors": sum(map(int, errors))}


def single_calls(server: Server, access: str, refresh: str) -> list[Callable[[], None]]:
    """One introspection of `access`, and one refresh grant on the chain begun by `refresh`."""
    http = httpx.Client(base_url=server.url, auth=server.auth, timeout=30)
    chain = [refresh]

    def introspect() -> None:
        r = http.post(server.introspect_path, data={"token": access})
        assert r.raise_for_status().json()["active"], r.text

    def refresh_grant() -> None:
        grant = {"grant_type": "refresh_token", "refresh_token": chain[0]}
        chain[0] = (
            http.post(server.token_path, data=grant).raise_for_status().json()["refresh_token"]
        )

    return [introspect, refresh_grant]


def worker_rss(pid: int) -> list[int]:
    """VmRSS in MiB of each worker process: the children of `pid`, or `pid` when it has none."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = [
        c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
    ]
    return [
        int(grab(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{w}/status").read_text())) // 1024
        for w in workers or [str(pid)]
    ]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp, self.serial = args, tmp, itertools.count()
        self.exe = str(args.livegate.resolve() / ".venv" / "bin" / "livegate")
        tag = os.getpid()
        self.lg_db, self.dot_db = f"bench_livegate_{tag}", f"bench_dot_{tag}"
        pg = conninfo_to_dict(args.postgres)
        self.pg = {k: str(pg.get(k) or "") for k in ("host", "port", "user", "password")}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
        self.env |= {"LIVEGATE_DATA_DIR": str(tmp), "LIVEGATE_LOG_LEVEL": "warning"}
        self.env["LIVEGATE_QR_POLL_INTERVAL"] = str(QR_POLL)
        user = self.pg["user"] + (f":{self.pg['password']}" if self.pg["password"] else "")
        where = f"{self.pg['host'] or '127.0.0.1'}:{self.pg['port'] or 5432}"
        self.env["LIVEGATE_DATABASE_URL"] = f"postgresql+psycopg://{user}@{where}/{self.lg_db}"
        self.dot_python = str(args.dot_venv / "bin" / "python")
        self.dot_secret = secrets.token_urlsafe(32)
        self.sim = ""
        self.client: dict[str, str] = {}

    def prepare(self) -> None:
        """The livegate client, and the DOT project: venv, settings, migrations."""
        scope = ("--scope", "webcast:fetch", "--redirect-uri", REDIRECT, "--json")
        self.client = json.loads(self.livegate("clients", "create", "--name", "bench", *scope))
        # Makes the server key file, before several workers could race to make it.
        self.livegate("keys", "status", "--json")
        if not os.access(self.dot_python, os.X_OK):
            subprocess.run([sys.executable, "-m", "venv", str(self.args.dot_venv)], check=True)
            pip = [self.dot_python, "-m", "pip", "install", "-q", *DOT_PACKAGES]
            subprocess.run(pip, check=True)
        (project := self.tmp / "dot").mkdir()
        (project / "settings.py").write_text(DJANGO_SETTINGS.format(dbname=self.dot_db, **self.pg))
        (project / "urls.py").write_text(DJANGO_URLS)
        self.dot_env = os.environ | {
            "PYTHONPATH": str(project),
            "DJANGO_SETTINGS_MODULE": "settings",
        }
        self.django("migrate", "-v0")
        seed = DJANGO_SEED.format(secret=self.dot_secret, redirect=REDIRECT, n=self.pairs_needed())
        pairs = json.loads(self.django("shell", "-c", seed).splitlines()[-1])
        self.dot_seeded = [(a, r) for a, r in pairs]

    def pairs_needed(self) -> int:
        """Access and refresh tokens for the load: the introspected ones and the chains (a
        warm-up and a timed run of each cell), and one pair for the statement counts."""
        return INTROSPECTED + self.args.rounds * sum(self.args.concurrency) * 2 + 1

    def livegate(self, *args: str) -> str:
        return subprocess.run(
            [self.exe, *args], env=self.env, check=True, capture_output=True
        ).stdout.decode()

    def django(self, *args: str) -> str:
        cmd = [self.dot_python, "-m", "django", *args]
        return subprocess.run(
            cmd, env=self.dot_env, check=True, capture_output=True
        ).stdout.decode()

    def lg_pairs(self, n: int) -> list[tuple[str, str]]:
        with ThreadPoolExecutor(8) as pool:
            jobs = [next(self.serial) for _ in range(n)]
            return list(pool.map(lambda i: sign_in(self.lg.url, self.sim, self.client, i), jobs))

    @contextmanager
    def servers(self, workers: int) -> Iterator[None]:
        """livegate serve and DOT under gunicorn, each with `workers` processes."""
        lg_port, dot_port = free_port(), free_port()
        flag = ["--workers", str(workers)] if self.args.lg_workers_flag else []
        lg = [self.exe, "serve", "--port", str(lg_port), *flag]
        gunicorn = [self.dot_python, "-m", "gunicorn", "-w", str(workers)]
        gunicorn += ["-b", f"127.0.0.1:{dot_port}", "django.core.wsgi:get_wsgi_application()"]
        with (
            running(lg, self.env, self.tmp / "livegate.log", lg_port) as lg_pid,
            running(gunicorn, self.dot_env, self.tmp / "dot.log", dot_port) as dot_pid,
        ):
            paths = ("/tiktok/oauth/token", "/tiktok/oauth/introspect")
            lg_auth = (self.client["client_id"], self.client["client_secret"])
            self.lg = Server("livegate", f"http://127.0.0.1:{lg_port}", *paths, lg_auth, self.lg_db)
            self.dot = Server(
                "DOT", f"http://127.0.0.1:{dot_port}", "/o/token/", "/o/introspect/",
                ("bench", self.dot_secret), self.dot_db,
            )  # fmt: skip
            self.lg.pid, self.dot.pid = lg_pid, dot_pid
            yield

    def statements(self, log: Path) -> dict[str, float]:
        """Statements per refresh and per introspection (both), per sign-in flow (livegate)."""
        admin, counts = self.args.postgres, {}
        with statement_logging(admin, self.lg_db, self.dot_db), self.servers(1):
            counts["flow"] = count_statements(admin, log, self.lg_db, lambda: self.lg_pairs(1), 3)
            for server, pair in ((self.lg, self.lg_pairs(1)[0]), (self.dot, self.dot_seeded.pop())):
                # Introspection first: a refresh may end the pair's access token.
                for workload, action in zip(
                    WORKLOADS[::-1], single_calls(server, *pair), strict=True
                ):
                    counts[f"{workload} {server.name}"] = count_statements(
                        admin, log, server.db, action, 10
                    )
        return counts

    def load(self) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
        args, rows = self.args, []
        with self.servers(2):
            print(f"signing in {self.pairs_needed() - 1} times", file=sys.stderr)
            pairs = {"livegate": self.lg_pairs(self.pairs_needed() - 1), "DOT": self.dot_seeded}
            for rnd, conc, workload in itertools.product(
                range(args.rounds), args.concurrency, WORKLOADS
            ):
                for server in (self.lg, self.dot):
                    mine = pairs[server.name]
                    for secs in (args.warmup, args.duration):
                        if workload == "refresh":
                            tokens = [r for _, r in mine[-conc:]]
                            del mine[-conc:]
                        else:
                            tokens = [a for a, _ in mine[:INTROSPECTED]]
                        row = wrk(server, workload, tokens, conc, secs, self.tmp)
                    rows.append(row | {"round": rnd, "conc": conc, "workload": workload})
                    rows[-1]["server"] = server.name
                    print(f"  {rows[-1]}", file=sys.stderr)
            time.sleep(2)
            return rows, {s.name: worker_rss(s.pid) for s in (self.lg, self.dot)}


def report(rows: list[dict[str, Any]], counts: dict[str, float], rss: dict[str, list[int]]) -> None:
    head = "{:<11}{:>5} |{:>9}{:>8}{:>8}{:>7} |{:>9}{:>8}{:>8}{:>7} |{:>7}"
    columns = ("req/s", "p50", "p99", "errors")
    print(f"{'':16} |{'livegate':^32} |{'django-oauth-toolkit':^32} |")
    print(head.format("workload", "conn", *columns, *columns, "ratio"))
    for workload, conc in itertools.product(WORKLOADS, sorted({r["conc"] for r in rows})):
        cell = [r for r in rows if r["workload"] == workload and r["conc"] == conc]
        lg = [r for r in cell if r["server"] == "livegate"]
        dot = [r for r in cell if r["server"] == "DOT"]
        line = f"{workload:<11}{conc:>5} |"
        for side in (lg, dot):
            medians = [statistics.median(r[k] for r in side) for k in ("rps", "p50", "p99")]
            line += "{:>9.0f}{:>8.1f}{:>8.1f}".format(*medians)
            line += f"{sum(r['errors'] for r in side):>7} |"
        ratio = statistics.median(
            a["rps"] / max(b["rps"], 1e-9) for a, b in zip(lg, dot, strict=True)
        )
        print(f"{line}{ratio:>6.1f}x")
    if counts:
        print(
            "statements per request (PostgreSQL log, BEGIN/COMMIT included): refresh "
            f"livegate {counts['refresh livegate']:.1f}, DOT {counts['refresh DOT']:.1f}; "
            f"introspection livegate {counts['introspect livegate']:.1f}, "
            f"DOT {counts['introspect DOT']:.1f}; authorization-code flow (livegate, "
            f"consent page to tokens) {counts['flow']:.1f}"
        )
    sides = (f"{name} " + ", ".join(map(str, mib)) for name, mib in rss.items())
    print("idle RSS per worker, MiB: " + "; ".join(sides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--livegate", type=Path, default=here.parent, help="checkout to measure")
    parser.add_argument("--rounds", type=int, default=3, help="default 3")
    parser.add_argument("--duration", type=int, default=10, help="s per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="s before each run (default 2)")
    parser.add_argument("--concurrency", default="8,32", help="connections (default 8,32)")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a superuser connection; the bench databases are created and dropped there",
    )  # fmt: skip
    parser.add_argument(
        "--pg-log", type=Path, help="PostgreSQL's log file (default: Debian's, if readable)"
    )
    parser.add_argument("--dot-venv", type=Path, default=here / ".dot-venv", help="made if absent")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (Debian/Ubuntu), brew install wrk")
    exe = args.livegate.resolve() / ".venv" / "bin" / "livegate"
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} is missing: run `make venv` in {args.livegate}")
    help_text = subprocess.run([exe, "serve", "--help"], capture_output=True, text=True).stdout
    args.lg_workers_flag = "--workers" in help_text
    if not args.lg_workers_flag:
        print("note: this livegate has no `serve --workers`: it runs 1 process", file=sys.stderr)
    logs = sorted(Path("/var/log/postgresql").glob("postgresql-*.log"))
    log = args.pg_log or (logs[-1] if logs else None)
    if log is None or not os.access(log, os.R_OK):
        print(f"note: cannot read PostgreSQL's log ({log}): no statement counts", file=sys.stderr)
        log = None
    git = ["git", "-C", str(args.livegate), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        bench = Bench(args, Path(stack.enter_context(tempfile.TemporaryDirectory())))
        stack.enter_context(databases(args.postgres, bench.lg_db, bench.dot_db))
        bench.prepare()
        port = free_port()
        sim = [str(exe), "simulator", "--port", str(port)]
        stack.enter_context(running(sim, bench.env, bench.tmp / "simulator.log", port))
        bench.sim = bench.env["LIVEGATE_TIKTOK_URL"] = f"http://127.0.0.1:{port}"
        counts = bench.statements(log) if log else {}
        rows, rss = bench.load()
        versions = bench.django("version").strip()
    pg_version = sql(args.postgres, "SHOW server_version")[0][0]
    workers = "serve --workers 2" if args.lg_workers_flag else "serve: 1 process, no --workers"
    print(
        f"livegate {args.livegate.resolve()} @ {commit} ({workers}); django-oauth-toolkit 3.4.1"
        f" on Django {versions}, gunicorn -w 2; PostgreSQL {pg_version}; rounds: {args.rounds}"
        f" x {args.duration} s after {args.warmup} s warm-up; {os.cpu_count()} CPUs,"
        f" {os.uname().release}\nmedians of the rounds; latency in ms; errors summed; ratio"
        " is livegate/DOT req/s (median of the rounds' ratios)"
    )
    report(rows, counts, rss)


if __name__ == "__main__":
    main()
