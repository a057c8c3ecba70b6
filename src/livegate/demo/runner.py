"""`livegate demo`: the gateway, the TikTok simulator and a sample app on consecutive ports."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import random
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from livegate.apikeys import create_api_key
from livegate.app import create_app
from livegate.config import Settings
from livegate.dashboard.passwords import hash_password
from livegate.dashboard.service import create_developer
from livegate.db.engine import Database
from livegate.db.migrate import upgrade
from livegate.db.models import Developer
from livegate.demo import DEMO_DIR, cli_invocation
from livegate.demo.sample_app import SampleConfig, create_sample_app
from livegate.logs import setup_logging, uvicorn_log_config
from livegate.oauth import clients
from livegate.simulator.activity import LINES
from livegate.simulator.app import create_simulator_app

log = logging.getLogger("livegate.demo")

STREAMER = "demo_streamer"
VIEWERS = ["alice", "bob", "carol"]
SCOPE = "webcast:fetch webcast:bulk_live_check webcast:chat user:info"
DEVELOPER_EMAIL = "demo@livegate.test"
# How long open connections (a chat stream, a WebSocket relay) may hold up Ctrl-C.
SHUTDOWN_GRACE = 3


@dataclass
class DemoDeveloper:
    id: int
    email: str
    password: str


def demo_developer(database: Database, settings: Settings) -> DemoDeveloper:
    """The dashboard account the demo prints: an admin, so clients made with the CLI (which
    have no owner) show up too. Its password is kept in the demo's data directory."""
    path = settings.data_dir / "developer.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    password = saved.get("password") or secrets.token_urlsafe(12)
    with database.session() as session:
        row = session.scalar(select(Developer).where(Developer.email == DEVELOPER_EMAIL))
        if row is None:
            row = create_developer(session, DEVELOPER_EMAIL, password, is_admin=True)
        elif not saved:
            row.password_hash = hash_password(password)
        developer = DemoDeveloper(row.id, row.email, password)
    if not saved:
        path.write_text(json.dumps({"email": developer.email, "password": password}))
        path.chmod(0o600)
    return developer


@dataclass(frozen=True)
class SampleClient:
    client_id: str
    client_secret: str
    api_key: str  # the app's API key: its server mints the page's stream tokens with it


def sample_client(
    database: Database, redirect_uri: str, settings: Settings, owner_id: int
) -> SampleClient:
    """The sample app's registration and API key, created once and kept in the demo's data
    directory."""
    path = settings.data_dir / "sample-client.json"
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    with database.session() as session:
        row = clients.get_client(session, saved["client_id"]) if saved else None
        if row is not None and row.redirect_uris == [redirect_uri]:
            row.owner_id = row.owner_id or owner_id
            data = dict(saved)
        else:
            new = clients.create_client(
                session,
                name="Sample LIVE app",
                description="The demo's example third-party app.",
                redirect_uris=[redirect_uri],
                scope=SCOPE,
                owner_id=owner_id,
            )
            assert new.client_secret is not None  # noqa: S101  # narrows the type: a confidential client
            row = new.row
            data = {"client_id": row.client_id, "client_secret": new.client_secret}
        if "api_key" not in data:
            data["api_key"], _ = create_api_key(
                session, name="Sample LIVE app", client_pk=row.id, owner_id=owner_id
            )
    if data != saved:
        path.write_text(json.dumps(data))
        path.chmod(0o600)
    return SampleClient(data["client_id"], data["client_secret"], data["api_key"])


async def seed_simulator(sim_url: str) -> None:
    """One live room and a steady trickle of comments, so there is something to watch."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=5) as http:
        for name in [STREAMER, *VIEWERS]:
            await http.post("/_sim/accounts", json={"unique_id": name, "nickname": name.title()})
        room = (
            await http.post(
                "/_sim/rooms", json={"unique_id": STREAMER, "title": "livegate demo stream"}
            )
        ).json()
        room_id = room["room_id"]
        while True:
            await asyncio.sleep(random.uniform(1.5, 3.5))  # noqa: S311  # demo pacing
            try:
                await http.post(
                    f"/_sim/rooms/{room_id}/comments",
                    json={"unique_id": random.choice(VIEWERS), "text": random.choice(LINES)},  # noqa: S311  # demo chatter
                )
            except httpx.HTTPError:
                continue


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: with three servers in one process each would
    replace the last one's, and re-raise Ctrl-C as a KeyboardInterrupt when it stops. The
    demo handles the signals itself (run_servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: Any) -> _Server:
    return _Server(
        uvicorn.Config(
            app,
            log_config=uvicorn_log_config(),
            log_level="warning",
            proxy_headers=False,  # as `livegate serve`: see app.py
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
    )


class PortInUse(Exception):
    pass


def bind(host: str, port: int, what: str, base: int) -> socket.socket:
    """A socket bound to host:port before anything starts, so that a busy port is one clear
    line instead of uvicorn's traceback. `base` is the demo's first port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
        raise PortInUse(
            f"livegate demo: port {port} ({what}) {reason}; "
            f"move the demo to other ports: make demo PORT={9100 if base == 9000 else 9000}"
        ) from exc
    return sock


def banner(gw_url: str, sim_url: str, app_url: str, developer: DemoDeveloper) -> str:
    cli = f"LIVEGATE_DATA_DIR={DEMO_DIR} {cli_invocation()}"
    return (
        "\n"
        "livegate demo is running (Ctrl-C stops it).\n\n"
        f"  Sample app       {app_url}   <- start here\n"
        f"  livegate         {gw_url}   dashboard: {gw_url}/dashboard\n"
        f"                   sign in as {developer.email} / {developer.password}\n"
        f"  TikTok simulator {sim_url}\n\n"
        "Next: in the sample app, Connect TikTok, then Continue with TikTok. On the QR page,\n"
        '"Open this sign-in in the TikTok app" opens the simulator\'s phone in a new tab:\n'
        "pick an account, press Confirm, and the app streams the live chat of\n"
        f"@{STREAMER}. Without a browser: docs/simulator.md does it all with curl.\n\n"
        "Register your own app in the demo's database (from this directory):\n"
        f'  {cli} clients create --name "My app" \\\n'
        f'      --redirect-uri http://127.0.0.1:9999/callback --scope "webcast:fetch user:info"\n'
    )


async def run_servers(
    servers: list[_Server],
    sockets: list[socket.socket],
    gateway: FastAPI,
    sim_url: str,
    on_started: Callable[[], None],
) -> bool:
    """Serve until SIGINT or SIGTERM (a second one stops at once); False when a server
    failed to start."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if any(s.should_exit for s in servers):
            for s in servers:
                s.force_exit = True
            return
        # Open event streams (the sample page's chat) end now: uvicorn would wait for them.
        gateway.state.webcast.sse.drain()
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [
        asyncio.create_task(s.serve(sockets=[sock]))
        for s, sock in zip(servers, sockets, strict=True)
    ]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            return False
        await asyncio.sleep(0.05)
    on_started()
    seeder = asyncio.create_task(seed_simulator(sim_url))
    try:
        await asyncio.gather(*tasks)
    finally:
        seeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await seeder
    for s in servers:
        if s.force_exit:
            # A second Ctrl-C stops uvicorn without waiting for connections and without the
            # app's shutdown; left pending, the app's lifespan is cancelled at exit and
            # uvicorn logs that as an error with a traceback.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_GRACE):
                    await s.lifespan.shutdown()
    return True


def run_demo(host: str = "127.0.0.1", port: int = 8000) -> None:
    setup_logging("info")
    # Migrations log each step at INFO; the demo's output is the banner.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    gw_url, sim_url, app_url = (f"http://{host}:{p}" for p in (port, port + 1, port + 2))
    try:
        sockets = [
            bind(host, port, "livegate", port),
            bind(host, port + 1, "the TikTok simulator", port),
            bind(host, port + 2, "the sample app", port),
        ]
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
    DEMO_DIR.mkdir(exist_ok=True)
    settings = Settings(
        host=host, port=port, public_url=gw_url, tiktok_url=sim_url, data_dir=DEMO_DIR
    )
    upgrade(settings.db_url)
    database = Database(settings.db_url)
    developer = demo_developer(database, settings)
    registered = sample_client(database, f"{app_url}/callback", settings, developer.id)
    sample = SampleConfig(
        gateway_url=gw_url,
        gateway_api_url=gw_url,
        public_url=app_url,
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        scope=SCOPE,
        room_unique_id=STREAMER,
        api_key=registered.api_key,
    )
    gateway = create_app(settings, database)
    servers = [
        _server(gateway),
        _server(create_simulator_app()),
        _server(create_sample_app(sample)),
    ]

    def started() -> None:
        print(banner(gw_url, sim_url, app_url, developer), flush=True)

    if not asyncio.run(run_servers(servers, sockets, gateway, sim_url, started)):
        raise SystemExit(1)
    print("livegate demo stopped.", flush=True)
