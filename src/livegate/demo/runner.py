"""`livegate demo`: the gateway, the TikTok simulator and a sample app on consecutive ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.migrate import upgrade
from livegate.demo.sample_app import SampleConfig, create_sample_app
from livegate.logs import setup_logging, uvicorn_log_config
from livegate.oauth import clients
from livegate.simulator.app import create_simulator_app

log = logging.getLogger("livegate.demo")

DEMO_DIR = Path(".livegate-demo")
STREAMER = "demo_streamer"
VIEWERS = ["alice", "bob", "carol"]
LINES = [
    "hello from the simulator!",
    "this stream is great",
    "who else is watching?",
    "livegate works!",
    "greetings from the chat",
    "can you say hi to me?",
]
SCOPE = "webcast:fetch webcast:bulk_live_check webcast:chat user:info"


def sample_client(database: Database, redirect_uri: str, settings: Settings) -> tuple[str, str]:
    """The sample app's registration, created once and kept in the demo's data directory."""
    path = settings.data_dir / "sample-client.json"
    with database.session() as session:
        if path.exists():
            saved = json.loads(path.read_text())
            row = clients.get_client(session, saved["client_id"])
            if row is not None and row.redirect_uris == [redirect_uri]:
                return saved["client_id"], saved["client_secret"]
        new = clients.create_client(
            session,
            name="Sample LIVE app",
            description="The demo's example third-party app.",
            redirect_uris=[redirect_uri],
            scope=SCOPE,
        )
        assert new.client_secret is not None  # noqa: S101  # narrows the type: a confidential client
        data = {"client_id": new.row.client_id, "client_secret": new.client_secret}
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data["client_id"], data["client_secret"]


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


def _server(app: Any, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=uvicorn_log_config(),
            log_level="warning",
            proxy_headers=False,  # as `livegate serve`: see app.py
        )
    )


def run_demo(host: str = "127.0.0.1", port: int = 8000) -> None:
    setup_logging("info")
    gw_url, sim_url, app_url = (f"http://{host}:{p}" for p in (port, port + 1, port + 2))
    DEMO_DIR.mkdir(exist_ok=True)
    settings = Settings(
        host=host, port=port, public_url=gw_url, tiktok_url=sim_url, data_dir=DEMO_DIR
    )
    upgrade(settings.db_url)
    database = Database(settings.db_url)
    client_id, client_secret = sample_client(database, f"{app_url}/callback", settings)
    sample = create_sample_app(
        SampleConfig(
            gateway_url=gw_url,
            gateway_api_url=gw_url,
            public_url=app_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=SCOPE,
            room_unique_id=STREAMER,
        )
    )
    servers = [
        _server(create_app(settings, database), host, port),
        _server(create_simulator_app(), host, port + 1),
        _server(sample, host, port + 2),
    ]

    async def main() -> None:
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.05)
        seeder = asyncio.create_task(seed_simulator(sim_url))
        print(
            "\n"
            f"  livegate demo is running.\n\n"
            f"  Open the sample app:   {app_url}\n"
            f"  livegate (gateway):    {gw_url}\n"
            f"  TikTok simulator:      {sim_url}\n\n"
            "  Click 'Connect TikTok', then 'Continue with TikTok'. On the QR page, follow the\n"
            "  'Open this sign-in in the TikTok app' link: it opens the simulator's phone page,\n"
            "  where you pick an account and press Confirm. Back in the app, live chat of\n"
            f"  @{STREAMER} arrives within seconds. Ctrl-C stops everything.\n",
            flush=True,
        )
        try:
            await asyncio.gather(*tasks)
        finally:
            seeder.cancel()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
