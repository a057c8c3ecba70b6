"""The demo's sample app: a standard OAuth client connecting through livegate."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from livegate.db.engine import Database
from livegate.demo.sample_app import SampleConfig, create_sample_app
from livegate.oauth.clients import create_client
from tests.flows import phone, sim_account, wait_status
from tests.flows import start_qr as start_qr_flow
from tests.servers import ServerThread, free_port

SCOPE = "webcast:fetch user:info webcast:bulk_live_check"


@pytest.fixture(scope="module")
def sample(gateway: ServerThread, database: Database) -> Iterator[ServerThread]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with database.session() as s:
        new = create_client(
            s, name="Sample LIVE app", redirect_uris=[f"{url}/callback"], scope=SCOPE
        )
    assert new.client_secret
    cfg = SampleConfig(
        gateway_url=gateway.url,
        gateway_api_url=gateway.url,
        public_url=url,
        client_id=new.row.client_id,
        client_secret=new.client_secret,
        scope=SCOPE,
        room_unique_id="demo_streamer",
    )
    server = ServerThread(create_sample_app(cfg), port=port).start()
    yield server
    server.stop()


def connect(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread, unique_id: str
) -> httpx.Client:
    user = httpx.Client(base_url=sample.url, follow_redirects=False, timeout=10)
    home = user.get("/")
    assert 'href="/login"' in home.text
    r = user.get("/login")
    assert r.status_code == 302
    authorize = r.headers["location"]
    assert authorize.startswith(f"{gateway.url}/tiktok/oauth/authorize?")
    assert "code_challenge_method=S256" in authorize
    account = sim_account(sim.url, unique_id)
    login = start_qr_flow(gateway.url, authorize)
    phone(sim.url, login.qr_token, "scan", account["uid"])
    phone(sim.url, login.qr_token, "confirm", account["uid"])
    redirect = wait_status(login, {"done"})["redirect"]
    assert isinstance(redirect, str) and redirect.startswith(f"{sample.url}/callback?")
    back = user.get(redirect.removeprefix(sample.url))
    assert back.status_code == 303
    return user


def test_sample_app_connects_and_shows_scopes_and_profile(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread
) -> None:
    user = connect(sample, gateway, sim, "sampleviewer")
    page = user.get("/").text
    assert "Signed in as <strong>@sampleviewer</strong>" in page
    scopes = re.findall(r'<li data-scope="([^"]+)"><strong>([^<]+)</strong>', page)
    assert scopes == [
        ("webcast:fetch", "Read LIVE events"),
        ("user:info", "Read your profile"),
        ("webcast:bulk_live_check", "Check who is live"),
    ]
    # Lifetimes in words, not "2591998 s".
    assert "renews in 1 hour" in page and "again in 30 days" in page
    assert "Authorization failed" not in page


def test_sample_app_shows_refusal(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread
) -> None:
    user = httpx.Client(base_url=sample.url, follow_redirects=False, timeout=10)
    authorize = user.get("/login").headers["location"]
    login = start_qr_flow(gateway.url, authorize)
    phone(sim.url, login.qr_token, "refuse")
    redirect = wait_status(login, {"refused"})["redirect"]
    assert isinstance(redirect, str)
    user.get(redirect.removeprefix(sample.url))
    assert "Authorization failed: access_denied" in user.get("/").text


def test_sample_app_streams_live_chat_through_livegate(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread
) -> None:
    room = httpx.post(f"{sim.url}/_sim/rooms", json={"unique_id": "demo_streamer"}).json()
    user = connect(sample, gateway, sim, "chatwatcher")
    httpx.post(
        f"{sim.url}/_sim/rooms/{room['room_id']}/comments",
        json={"unique_id": "alice", "text": "before connect"},
    )
    seen: list[str] = []
    with user.stream("GET", "/chat/stream", timeout=20) as stream:
        assert stream.status_code == 200
        event = None
        deadline = time.monotonic() + 30
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, f"no chat after 30 s; saw {seen}"
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert event != "error", data
                if event == "status":
                    httpx.post(
                        f"{sim.url}/_sim/rooms/{room['room_id']}/comments",
                        json={"unique_id": "bob", "text": "after connect"},
                    )
                if event == "comment":
                    seen.append(data["text"])
                    if "after connect" in seen:
                        break
    assert "before connect" in seen and "after connect" in seen
