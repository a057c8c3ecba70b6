"""A fleet (issue 25): HAProxy, round-robin and without stickiness, in front of two
`livegate serve --workers 2` instances sharing one PostgreSQL and one Redis, and nothing else.

Through it: the authorization-code flow (its QR polls landing on both instances), TikTokLive
7.0.1 whose relay ticket opens on the other instance than the fetch that issued it, a token
revoked through one instance refused on its next call through the other, and a rate limit
counted across both. Faults: one instance killed with SIGKILL during eight refresh chains, and
one refresh token raced by twenty requests spread over both instances, a hundred times.

Which instance served what is read from HAProxy's own request log (`option httplog`), so the
instances need no marker. PostgreSQL and Redis only: on SQLite the module is skipped (a fleet
shares PostgreSQL). HAProxy must be installed (CI installs Debian's package); only with
LIVEGATE_TEST_NO_HAPROXY=1 set does its absence skip the module instead of failing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from TikTokLive.events import CommentEvent

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import Grant, RefreshToken
from livegate.secrets import digest
from tests.browser import (
    Browsing,
    browsing_fixture,  # noqa: F401
    callback_app_fixture,  # noqa: F401
    chromium_fixture,  # noqa: F401
    expect,
)
from tests.oauth_helpers import App, introspect, refresh, register, revoke, tokens_for
from tests.servers import ServerThread, free_port, wait_for
from tests.test_browser_oauth import continue_to_qr, new_app, open_consent, username, wait_callback
from tests.test_serve_workers import Served, base_env
from tests.test_tiktoklive_e2e import DEADLINE, _ws_connected, make_client
from tests.test_token_attacks import Racer, not_invalid_grant, side_by_side
from tests.webcast_helpers import add_comment, new_room, new_user

spec = pytest.mark.spec
PG_URL = os.environ.get("LIVEGATE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("LIVEGATE_TEST_REDIS_URL")
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)

pytestmark = [
    pytest.mark.skipif(
        not (PG_URL and REDIS_URL),
        reason="a fleet shares PostgreSQL and Redis (LIVEGATE_TEST_DATABASE_URL, "
        "LIVEGATE_TEST_REDIS_URL)",
    ),
    pytest.mark.skipif(
        HAPROXY is None and os.environ.get("LIVEGATE_TEST_NO_HAPROXY") == "1",
        reason="haproxy is not installed and LIVEGATE_TEST_NO_HAPROXY=1 says so",
    ),
]

WORKERS = 2
CONNECT_LIMIT = 12  # connection starts per token per minute, counted in Redis
CHAINS = 8  # clients refreshing in a loop while one instance is killed
TRIALS = 100
RACERS = 20
SECRET_KEYS = f"fleet-{secrets.token_urlsafe(32)},fleet-old-{secrets.token_urlsafe(32)}"

HAPROXY_CFG = """\
global
    log stdout format raw local0
    maxconn 4000

defaults
    mode http
    log global
    option httplog
    # A new server connection per request: successive requests on one client connection
    # are balanced one by one, as a plain load balancer would.
    option http-server-close
    option forwardfor
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 120s
    timeout http-keep-alive 10s

frontend fleet
    bind 127.0.0.1:{port}
    default_backend livegate

backend livegate
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
    server a 127.0.0.1:{port_a} check
    server b 127.0.0.1:{port_b} check
"""

# `option httplog`: ... frontend backend/server Tq/Tw/Tc/Tr/Ta status ... "METHOD URI HTTP/x"
_LOG_LINE = re.compile(
    r' livegate/(?P<server>\w+) \S+ (?P<status>-?\d+) .*"(?P<method>[A-Z]+) (?P<uri>\S+)'
)


@dataclass(frozen=True)
class Hit:
    server: str
    status: int
    method: str
    uri: str


@dataclass
class Instance:
    name: str
    port: int
    env: dict[str, str]
    tmp: Path
    served: Served | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log_path = self.tmp / f"{self.name}-{self.starts}.log"
        with log_path.open("wb") as out:
            # A session of its own: SIGKILL to the group takes the workers with the parent.
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "livegate.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(WORKERS),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        served = self.served = Served(proc, self.url, log_path)
        wait_for(
            lambda: proc.poll() is not None or len(served.worker_pids()) == WORKERS,
            timeout=90,
            interval=0.2,
            what=f"instance {self.name}: {WORKERS} workers started",
        )
        assert proc.poll() is None, log_path.read_text()

    def kill(self) -> None:
        assert self.served is not None
        os.killpg(self.served.proc.pid, signal.SIGKILL)
        self.served.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.served is None or self.served.proc.poll() is not None:
            return
        os.killpg(self.served.proc.pid, signal.SIGTERM)
        try:
            self.served.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.served.proc.pid, signal.SIGKILL)
            self.served.proc.wait(timeout=30)


@dataclass
class Fleet:
    url: str  # HAProxy's
    a: Instance
    b: Instance
    log_path: Path
    proxy: subprocess.Popen[bytes] = field(repr=False)

    def hits(self) -> list[Hit]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            m = _LOG_LINE.search(line)
            if m:
                out.append(Hit(m["server"], int(m["status"]), m["method"], m["uri"]))
        return out

    def servers_up(self, *names: str) -> bool:
        """Both instances answer through HAProxy (health checks have marked them up)."""
        seen = set()
        for _ in range(6):
            r = httpx.get(f"{self.url}/healthz", timeout=5)
            if r.status_code != 200:
                return False
            seen.add(self.hits()[-1].server if self.hits() else "")
        return set(names) <= seen


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, gateway_settings: Settings, sim: ServerThread
) -> Iterator[Fleet]:
    assert HAPROXY is not None, "haproxy is not installed (apt-get install -y haproxy)"
    tmp = tmp_path_factory.mktemp("fleet")
    port, port_a, port_b = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, port_a=port_a, port_b=port_b))
    log_path = tmp / "haproxy.log"

    def env(name: str) -> dict[str, str]:
        (tmp / name).mkdir(exist_ok=True)
        return base_env(
            data_dir=str(tmp / name),
            database_url=gateway_settings.db_url,
            redis_url=REDIS_URL or "",
            secret_keys=SECRET_KEYS,
            public_url=url,
            trusted_proxies="127.0.0.1",
            tiktok_url=sim.url,
            # The shared simulator answers polls less than 0.3 s apart with TikTok's "too
            # fast", which holds a sign-in back for two minutes; a poll is timed from the
            # start of the request that claims it, so under load two polls of one sign-in can
            # go out closer than the interval. 1 s leaves them room.
            qr_poll_interval="1.0",
            purge_interval="0",
            log_json="true",
            rate_limit_connect=f"{CONNECT_LIMIT}/minute",
            rate_limit_failures="100000/minute",
            rate_limit_signup="100000/minute",
        )

    a = Instance("a", port_a, env("a"), tmp)
    b = Instance("b", port_b, env("b"), tmp)
    with log_path.open("wb") as out:
        proxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT
        )
    fleet = Fleet(url, a, b, log_path, proxy)
    try:
        a.start()  # migrations are applied once; the second finds nothing to do
        b.start()
        wait_for(lambda: fleet.servers_up("a", "b"), timeout=30, what="both instances up")
        yield fleet
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        a.stop()
        b.stop()


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def served_by(fleet: Fleet, start: int, pattern: str) -> list[Hit]:
    return [h for h in fleet.hits()[start:] if re.search(pattern, h.uri)]


# -- (a) the authorization-code flow ---------------------------------------------------------


@spec("livegate", "security: a fleet needs no sticky routing: sign-in polls land anywhere")
def test_authorization_code_flow_through_the_fleet_with_polls_on_both_instances(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    start = len(fleet.hits())
    app = register(database)
    tokens = tokens_for(fleet.url, sim.url, app)
    assert introspect(fleet.url, app, tokens["access_token"])["active"] is True
    polls = served_by(fleet, start, r"^/tiktok/oauth/login/[^/]+/status")
    assert {h.server for h in polls} == {"a", "b"}, polls
    assert all(h.status < 500 for h in fleet.hits()[start:])


@spec("RFC 6749", "4.1")
@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_authorization_code_flow_in_chromium_through_the_fleet(
    fleet: Fleet,
    sim: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    start = len(fleet.hits())
    app = new_app(database, SimpleNamespace(url=fleet.url), callback_app)  # type: ignore[arg-type]
    page = await browsing.desktop.new_page()
    await open_consent(page, app)
    href = await continue_to_qr(page)
    phone = await browsing.phone.new_page()
    resp = await phone.goto(href)
    assert resp is not None and resp.status == 200
    name = username()
    await phone.get_by_label(re.compile(r"create (a new |an )?account", re.I)).fill(name)
    await phone.get_by_role("button", name="Confirm").click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Logged in")
    params = await wait_callback(page, app)
    assert params["state"] == app.state and params["iss"] == fleet.url
    token: dict[str, Any] = await asyncio.to_thread(
        app.oauth.fetch_token, app.token_url, authorization_response=page.url
    )
    async with httpx.AsyncClient() as http:
        info = await http.get(
            f"{fleet.url}/tiktok/oauth/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
    assert info.status_code == 200 and info.json()["uniqueId"] == name
    # The page's requests and polls went to both instances, and none failed.
    sign_in = served_by(fleet, start, r"^/tiktok/oauth/(authorize|login/)")
    assert {h.server for h in sign_in} == {"a", "b"}, sign_in
    assert all(h.status < 500 for h in fleet.hits()[start:])


# -- (b) TikTokLive, its relay ticket opened on the other instance ---------------------------


async def _watch_once(fleet: Fleet, sim_url: str, token: str) -> tuple[str, str, list[str]]:
    """TikTokLive through HAProxy; which instance served the fetch and which the relay."""
    streamer = uname("fl")
    room_id = new_room(sim_url, streamer)
    add_comment(sim_url, room_id, uname("fan"), "hello from fetch")
    start = len(fleet.hits())
    client = make_client(fleet.url, streamer, token=token)
    texts: list[str] = []
    over_ws = asyncio.Event()

    @client.on(CommentEvent)
    async def on_comment(event: CommentEvent) -> None:
        texts.append(event.content)
        if event.content == "hello over ws":
            over_ws.set()

    task = await client.start(room_id=int(room_id), fetch_live_check=False)
    try:
        await asyncio.wait_for(_ws_connected(sim_url, room_id), DEADLINE)
        add_comment(sim_url, room_id, uname("fan"), "hello over ws")
        await asyncio.wait_for(over_ws.wait(), DEADLINE)
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    # HAProxy logs a tunnelled WebSocket when it closes.
    relay = wait_for(lambda: served_by(fleet, start, r"^/webcast/ws/"), what="relay logged")
    fetch = served_by(fleet, start, r"^/webcast/fetch")
    assert len(fetch) == 1 and len(relay) == 1, (fetch, relay)
    return fetch[0].server, relay[0].server, texts


@spec("livegate", "security: a relay ticket opens once, on any instance")
def test_tiktoklive_relay_ticket_opens_on_the_other_instance_than_the_fetch(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    viewer = new_user(fleet.url, sim.url, database, uname("flv"))
    runs = []
    # Round-robin decides; TikTokLive's calls before the fetch vary in number, so a run
    # whose fetch and relay met one instance is repeated (each run must work regardless).
    for _ in range(6):
        fetched_on, relayed_on, texts = asyncio.run(
            _watch_once(fleet, sim.url, viewer.access_token)
        )
        assert texts[:2] == ["hello from fetch", "hello over ws"]
        runs.append((fetched_on, relayed_on))
        if fetched_on != relayed_on:
            break
    assert any(f != r for f, r in runs), runs


# -- (c) revocation through one instance, refused through the other ---------------------------


def fetch(url: str, token: str, room_id: str) -> httpx.Response:
    return httpx.get(
        f"{url}/webcast/fetch",
        params={"room_id": room_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


@spec("livegate", "security: revocation works on the next call, on every instance")
def test_token_revoked_through_one_instance_is_refused_by_the_other_on_its_next_call(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    user = new_user(fleet.url, sim.url, database, uname("flr"))
    room_id = new_room(sim.url, uname("flrs"))
    assert fetch(fleet.b.url, user.access_token, room_id).status_code == 200
    assert revoke(fleet.a.url, user.app, user.access_token).status_code == 200
    refused = fetch(fleet.b.url, user.access_token, room_id)
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == 401
    # And through HAProxy, whichever instance answers.
    for _ in range(2):
        assert fetch(fleet.url, user.access_token, room_id).status_code == 401


# -- (d) a rate limit counted across both ------------------------------------------------------


@spec("livegate", "security: rate limits hold across a fleet (counted in Redis)")
def test_rate_limit_is_counted_across_both_instances(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    user = new_user(fleet.url, sim.url, database, uname("fll"))
    room_id = new_room(sim.url, uname("flls"))
    start = len(fleet.hits())
    with httpx.Client(timeout=10) as http:
        answers = [
            http.get(
                f"{fleet.url}/webcast/fetch",
                params={"room_id": room_id},
                headers={"Authorization": f"Bearer {user.access_token}"},
            )
            for _ in range(CONNECT_LIMIT + 1)
        ]
    assert [r.status_code for r in answers] == [200] * CONNECT_LIMIT + [429]
    assert answers[-1].json()["code"] == 429
    counted = served_by(fleet, start, r"^/webcast/fetch")[:CONNECT_LIMIT]
    assert {h.server for h in counted} == {"a", "b"}, counted


# -- (f) one refresh token raced over both instances ------------------------------------------


@spec("RFC 9700", "4.14.2")
@spec("livegate", "security: a refresh token is used once across a fleet, even in a race")
def test_one_refresh_token_raced_over_both_instances_wins_once_every_trial(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    auth = app.auth
    assert auth is not None
    families = side_by_side(TRIALS, lambda: tokens_for(fleet.url, sim.url, app))
    racer = Racer(RACERS)
    start = len(fleet.hits())
    failures: list[str] = []
    url = f"{fleet.url}/tiktok/oauth/token"
    try:
        for trial, t in enumerate(families):
            data = {"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}
            responses = racer.fire(
                [lambda c, d=data: c.post(url, data=d, auth=auth) for _ in range(RACERS)]  # type: ignore[misc]
            )
            won = [r for r in responses if r.status_code == 200]
            if len(won) != 1:
                failures.append(f"trial {trial}: {len(won)} requests got 200")
            elif bad := not_invalid_grant(responses):
                failures.append(f"trial {trial}: losers answered {bad}")
    finally:
        racer.close()
    assert not failures, f"{len(failures)}/{TRIALS} trials failed: {failures[:10]}"
    spread = {h.server for h in served_by(fleet, start, r"^/tiktok/oauth/token")}
    assert spread == {"a", "b"}


# -- (e) SIGKILL during refresh chains ---------------------------------------------------------


@dataclass
class Chain:
    pair: dict[str, Any]
    ok: int = 0
    cut: str | None = None  # why the chain stopped early, if it did


def run_chain(fleet_url: str, app: App, chain: Chain, stop: threading.Event) -> None:
    """Refresh in a loop through HAProxy, keeping the pair of each 200. A request the kill
    cut short is not resent: its refresh token may already be spent, and a resent one is a
    replay that revokes the family."""
    auth = app.auth
    assert auth is not None
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            data = {"grant_type": "refresh_token", "refresh_token": chain.pair["refresh_token"]}
            try:
                r = http.post(f"{fleet_url}/tiktok/oauth/token", data=data, auth=auth)
            except httpx.TransportError as exc:
                chain.cut = type(exc).__name__
                return
            if r.status_code != 200:
                chain.cut = f"{r.status_code} {r.text[:100]}"
                return
            chain.pair = r.json()
            chain.ok += 1


def family_of(db: Any, refresh_token: str) -> RefreshToken:
    row: RefreshToken = db.execute(
        select(RefreshToken).where(RefreshToken.token_digest == digest(refresh_token))
    ).scalar_one()
    return row


def live_refresh_tokens(database: Database, refresh_token: str) -> int:
    """The family's refresh tokens neither rotated nor revoked."""
    with database.session() as db:
        family = family_of(db, refresh_token).family_id
        return len(
            db.execute(
                select(RefreshToken.id).where(
                    RefreshToken.family_id == family,
                    RefreshToken.rotated_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                )
            ).all()
        )


def rotated(database: Database, refresh_token: str) -> bool:
    with database.session() as db:
        return family_of(db, refresh_token).rotated_at is not None


def untouched(database: Database, refresh_token: str) -> bool:
    """Whether the token is still live, read under its grant's lock: a transaction of the
    killed instance on that family has ended (committed or rolled back) by then."""
    with database.session() as db:
        row = family_of(db, refresh_token)
        db.execute(select(Grant.id).where(Grant.id == row.grant_id).with_for_update())
        db.refresh(row)
        return row.rotated_at is None and row.revoked_at is None


@spec("livegate", "security: killing an instance loses no committed token and forks no family")
def test_killing_an_instance_during_refresh_chains_leaves_every_pair_working(
    fleet: Fleet, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    chains = [Chain(t) for t in side_by_side(CHAINS, lambda: tokens_for(fleet.url, sim.url, app))]
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def run(c: Chain) -> None:
        threads.append(threading.Thread(target=run_chain, args=(fleet.url, app, c, stop)))
        threads[-1].start()

    def resume_cut() -> None:
        # A request the kill cut before the killed instance changed its family (it sat in
        # the dying instance's accept queue, say) left the refresh token live. The client
        # cannot know that, so it sends nothing again; the test reads it from the database
        # and lets that chain go on. Fast answers make it likely that every chain has a
        # request at the dying instance at the moment of the kill.
        for c in chains:
            if c.cut is not None and untouched(database, c.pair["refresh_token"]):
                c.cut = None
                run(c)

    for c in chains:
        run(c)
    try:
        wait_for(lambda: sum(c.ok for c in chains) >= 4 * CHAINS, timeout=60, what="chains run")
        fleet.a.kill()
        before = sum(c.ok for c in chains)

        def going_on() -> bool:
            resume_cut()
            return sum(c.ok for c in chains) >= before + 4 * CHAINS or all(c.cut for c in chains)

        # The other instance keeps serving the chains the kill did not cut, or cut before
        # their requests changed anything.
        wait_for(going_on, timeout=60, what="chains go on after the kill")
        assert sum(c.ok for c in chains) >= before + 4 * CHAINS, (
            [c.cut for c in chains],
            fleet.proxy.poll(),
        )
    finally:
        stop.set()
        for thread in list(threads):
            thread.join(timeout=60)
    for c in chains:
        assert live_refresh_tokens(database, c.pair["refresh_token"]) <= 1
    assert all(c.ok for c in chains), [c.ok for c in chains]
    working = []
    for c in chains:
        if c.cut is not None and rotated(database, c.pair["refresh_token"]):
            # The kill cut a request after its commit: the answer was lost with its pair, and
            # the family holds exactly the one refresh token that answer carried.
            assert live_refresh_tokens(database, c.pair["refresh_token"]) == 1
            continue
        working.append(c)
        # An answered 200's pair works: the access token and, once, the refresh token.
        assert introspect(fleet.b.url, app, c.pair["access_token"])["active"] is True, c
        r = refresh(fleet.b.url, app, c.pair["refresh_token"])
        assert r.status_code == 200, (c.cut, r.text)
        c.pair = r.json()
    assert working, [c.cut for c in chains]
    # The killed instance restarts clean and serves again, on its own and through HAProxy.
    fleet.a.start()
    assert httpx.get(f"{fleet.a.url}/readyz", timeout=10).status_code == 200
    r = refresh(fleet.a.url, app, working[0].pair["refresh_token"])
    assert r.status_code == 200, r.text
    wait_for(lambda: fleet.servers_up("a", "b"), timeout=30, what="a back behind HAProxy")
