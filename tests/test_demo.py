"""The demo: its sample app (a standard OAuth client connecting through livegate), and
`livegate demo` itself as a new user meets it: the banner, the CLI line it prints, the curl
walkthrough of docs/simulator.md run as written, the desktop journey in a browser through the
phone link, and a quiet terminal when a chat tab closes and on Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page

from livegate.apikeys import create_api_key
from livegate.db.engine import Database
from livegate.demo.sample_app import REVOKED, SampleConfig, create_sample_app
from livegate.oauth.clients import create_client
from tests.browser import (
    DESKTOP,
    PHONE,
    Console,
    chromium_fixture,  # noqa: F401
    expect,
    screenshot,
)
from tests.flows import phone, sim_account, wait_status
from tests.flows import start_qr as start_qr_flow
from tests.servers import ServerThread, free_port, wait_for

SCOPE = "webcast:fetch user:info webcast:bulk_live_check"


@pytest.fixture(scope="module")
def sample_cfg(gateway: ServerThread, database: Database) -> SampleConfig:
    url = f"http://127.0.0.1:{free_port()}"
    with database.session() as s:
        new = create_client(
            s, name="Sample LIVE app", redirect_uris=[f"{url}/callback"], scope=SCOPE
        )
        api_key, _ = create_api_key(s, name="Sample LIVE app", client_pk=new.row.id)
    assert new.client_secret
    return SampleConfig(
        gateway_url=gateway.url,
        gateway_api_url=gateway.url,
        public_url=url,
        client_id=new.row.client_id,
        client_secret=new.client_secret,
        scope=SCOPE,
        room_unique_id="demo_streamer",
        api_key=api_key,
    )


@pytest.fixture(scope="module")
def sample(sample_cfg: SampleConfig) -> Iterator[ServerThread]:
    port = int(sample_cfg.public_url.rsplit(":", 1)[1])
    server = ServerThread(create_sample_app(sample_cfg), port=port).start()
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


def chat_stream(user: httpx.Client, gateway_url: str) -> str:
    """The event stream URL the app hands its page: livegate's, with a browser token only."""
    r = user.get("/chat/token")
    assert r.status_code == 200, r.text
    url: str = r.json()["url"]
    assert url.startswith(f"{gateway_url}/webcast/rooms/demo_streamer/events?jwtKey=")
    assert "lg_at_" not in r.text and "lg_ak_" not in r.text  # no access token, no API key
    return url


def chats_until(lines: Iterator[str], want: str, seen: list[str]) -> None:
    """Reads the stream's events until a chat message says `want`."""
    deadline = time.monotonic() + 30
    for line in lines:
        assert time.monotonic() < deadline, f"no {want!r} after 30 s; saw {seen}"
        if line.startswith("data: "):
            event = json.loads(line.removeprefix("data: "))
            assert event.get("type") and "code" not in event, event
            if event["type"] == "WebcastChatMessage":
                seen.append(event["data"]["content"])
                if want in seen:
                    return
    raise AssertionError(f"the stream ended before {want!r}; saw {seen}")


def test_sample_app_streams_live_chat_through_livegate(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread
) -> None:
    room = httpx.post(f"{sim.url}/_sim/rooms", json={"unique_id": "demo_streamer"}).json()
    user = connect(sample, gateway, sim, "chatwatcher")
    httpx.post(
        f"{sim.url}/_sim/rooms/{room['room_id']}/comments",
        json={"unique_id": "alice", "text": "before connect"},
    )
    url = chat_stream(user, gateway.url)
    seen: list[str] = []
    # As the page's EventSource opens it: another origin, no cookie, no header.
    with httpx.stream("GET", url, headers={"Origin": sample.url}, timeout=20) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == "*"
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first.removeprefix("data: "))["type"] == "roomInfo"
        chats_until(lines, "before connect", seen)
        httpx.post(
            f"{sim.url}/_sim/rooms/{room['room_id']}/comments",
            json={"unique_id": "bob", "text": "after connect"},
        )
        chats_until(lines, "after connect", seen)
    assert seen.index("before connect") < seen.index("after connect")


@pytest.mark.browser
async def test_the_page_reads_livegates_stream_itself_and_says_when_the_live_ends(
    sample: ServerThread, gateway: ServerThread, sim: ServerThread, chromium: Browser
) -> None:
    room = httpx.post(f"{sim.url}/_sim/rooms", json={"unique_id": "demo_streamer"}).json()
    user = connect(sample, gateway, sim, "pagewatcher")
    context = await chromium.new_context(viewport=DESKTOP)
    console = Console()
    console.watch(context)
    opened: list[str] = []
    context.on("request", lambda r: opened.append(r.url) if "/events?" in r.url else None)
    cookie = user.cookies["sample_sid"]
    await context.add_cookies([{"name": "sample_sid", "value": cookie, "url": sample.url}])
    try:
        page = await context.new_page()
        await page.goto(sample.url)
        status = page.locator("#chat-status")
        await expect(status).to_have_text("connected to @demo_streamer")
        httpx.post(
            f"{sim.url}/_sim/rooms/{room['room_id']}/comments",
            json={"unique_id": "carol", "text": "read by the page"},
        )
        await expect(page.locator("#chat li").last).to_have_text("carolread by the page")
        # The page opened livegate's stream (another origin) with a browser token only.
        assert opened, "no event stream was opened"
        for url in opened:
            assert url.startswith(f"{gateway.url}/webcast/rooms/demo_streamer/events?jwtKey=")
            assert "lg_at_" not in url and "lg_ak_" not in url
        httpx.delete(f"{sim.url}/_sim/rooms/{room['room_id']}").raise_for_status()
        await expect(status).to_have_text("The LIVE of @demo_streamer ended.")
        await page.reload()
        await expect(status).to_have_text("@demo_streamer is not LIVE right now.")
    finally:
        await context.close()
    assert console.messages == []


def test_sample_app_pages_are_never_cached(sample: ServerThread) -> None:
    # Back after the sign-in must not show a stale "Connect TikTok".
    with httpx.Client(base_url=sample.url, timeout=10) as user:
        for path in ("/", "/login", "/callback?error=access_denied"):
            r = user.get(path, follow_redirects=False)
            assert r.headers["cache-control"] == "no-store", path


def test_sample_app_says_when_access_was_revoked(
    sample: ServerThread, sample_cfg: SampleConfig, gateway: ServerThread, sim: ServerThread
) -> None:
    user = connect(sample, gateway, sim, "revokedviewer")
    assert "<h2>Connected</h2>" in user.get("/").text
    token = sample_cfg.sessions[user.cookies["sample_sid"]].token
    assert token is not None
    # The user disconnects the app at livegate (/account does the same to the grant).
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(sample_cfg.client_id, sample_cfg.client_secret),
    )
    assert r.status_code == 200
    r = user.get("/chat/token")
    assert r.status_code == 401
    assert r.json() == {"error": "revoked", "message": REVOKED}
    page = user.get("/").text
    assert REVOKED in page and 'href="/login"' in page
    assert "Connected" not in page and "{" not in page
    # Said once; the page then simply offers to connect.
    again = user.get("/").text
    assert REVOKED not in again and 'href="/login"' in again


# -- `livegate demo`, run as a user runs it ------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
DOC = REPO / "docs" / "simulator.md"
TRACEBACK_SIGNS = ("Traceback", "Task exception was never retrieved", " ERROR ", "[redacted] 1000>")


def consecutive_free_ports(n: int = 3) -> int:
    """A first port such that it and the next n - 1 are free on loopback. Taken below the
    ephemeral range (32768 and up on Linux), where outgoing connections do not land."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no three consecutive free ports")


def user_env() -> dict[str, str]:
    """A shell as a new user has it: no LIVEGATE_* variables, the venv not on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")}
    venv_bin = str(VENV / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Demo:
    """`livegate demo` started as `make demo` starts it (`.venv/bin/livegate demo --port P`) in
    a fresh checkout-like directory, its output (stdout and stderr) collected line by line."""

    cwd: Path
    port: int
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def gw(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.port + 1}"

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.port + 2}"

    def output(self) -> str:
        return "".join(self.lines)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        """Ctrl-C, once (a second one means "now"), unless it has stopped already."""
        if self.proc.poll() is None and not self.interrupted:
            self.interrupt()
        return self.proc.wait(timeout=30)

    def interrupt(self) -> None:
        self.interrupted = True
        self.proc.send_signal(signal.SIGINT)


def start_demo(cwd: Path, port: int) -> Demo:
    (cwd / ".venv").symlink_to(VENV, target_is_directory=True)
    proc = subprocess.Popen(
        [".venv/bin/livegate", "demo", "--port", str(port)],
        cwd=cwd,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    demo = Demo(cwd, port, proc)
    threading.Thread(target=demo.read, daemon=True).start()
    return demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("checkout"), consecutive_free_ports())
    try:
        wait_for(
            lambda: "Register your own app" in running.output() or running.proc.poll() is not None,
            timeout=60,
            what="the demo's banner",
        )
        assert running.proc.poll() is None, running.output()
        yield running
    finally:
        running.stop()


def sign_in_sample_app(demo: Demo, unique_id: str) -> httpx.Client:
    """Connect the demo's sample app over HTTP, playing the phone through the simulator."""
    user = httpx.Client(base_url=demo.app, follow_redirects=False, timeout=15)
    authorize = user.get("/login").headers["location"]
    account = sim_account(demo.sim, unique_id)
    login = start_qr_flow(demo.gw, authorize)
    phone(demo.sim, login.qr_token, "scan", account["uid"])
    phone(demo.sim, login.qr_token, "confirm", account["uid"])
    redirect = wait_status(login, {"done"})["redirect"]
    assert isinstance(redirect, str)
    assert user.get(redirect.removeprefix(demo.app)).status_code == 303
    return user


def demo_room(demo: Demo) -> dict[str, Any]:
    rooms = httpx.get(f"{demo.sim}/_sim/rooms", timeout=10).json()
    live = [r for r in rooms if r["title"] == "livegate demo stream"]
    assert live, rooms
    room: dict[str, Any] = live[0]
    return room


def read_until_connected(lines: Iterator[str]) -> None:
    for line in lines:
        if line.startswith("data: "):
            event = json.loads(line.removeprefix("data: "))
            assert event.get("type") == "roomInfo", line
            return
    raise AssertionError("the chat stream ended before it connected")


def test_demo_prints_one_block_with_urls_login_and_the_cli_line(demo: Demo) -> None:
    out = demo.output()
    # Migrations and servers start quietly: the banner is all there is.
    assert out.lstrip().startswith("livegate demo is running"), out
    for url in (demo.gw, demo.sim, demo.app):
        assert url in out
    assert f"{demo.gw}/dashboard" in out
    assert "docs/simulator.md" in out
    found = re.search(r"sign in as (\S+@\S+) / (\S+)", out)
    assert found, out
    email, password = found.groups()

    # The dashboard login works, and shows the sample app's client.
    with httpx.Client(base_url=demo.gw, timeout=10) as browser:
        page = browser.get("/dashboard/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        r = browser.post(
            "/dashboard/login",
            data={"email": email, "password": password, "csrf_token": csrf.group(1)},
        )
        assert r.status_code == 303 and r.headers["location"].endswith("/dashboard/clients")
        assert "Sample LIVE app" in browser.get("/dashboard/clients").text

    # The CLI line, run as printed from the same directory, registers a client the running
    # gateway knows (not one in a new ./livegate.db).
    cli = re.search(r"^  (LIVEGATE_DATA_DIR=\.livegate-demo \.venv/bin/livegate .*)$", out, re.M)
    assert cli, out
    start = out.index(cli.group(1))
    command = out[start : out.index("\n\n", start) if "\n\n" in out[start:] else None]
    command = command.replace("\\\n", " ").strip()
    done = subprocess.run(
        ["bash", "-c", command], cwd=demo.cwd, env=user_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "livegate: database .livegate-demo/livegate.db" in done.stderr
    client_id = re.search(r"client_id:\s+(lgc_\S+)", done.stdout)
    assert client_id, done.stdout
    info = httpx.get(f"{demo.gw}/tiktok/oauth/clients/{client_id.group(1)}", timeout=10)
    assert info.status_code == 200 and info.json()["name"] == "My app"
    assert not (demo.cwd / "livegate.db").exists()


def test_cli_without_the_data_dir_says_which_database_and_where_the_demos_is(demo: Demo) -> None:
    done = subprocess.run(
        [".venv/bin/livegate", "clients", "list", "--json"],
        cwd=demo.cwd,
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("livegate: database livegate.db (new, empty)"), lines
    assert "LIVEGATE_DATA_DIR=.livegate-demo .venv/bin/livegate" in lines[1], lines
    (demo.cwd / "livegate.db").unlink()
    (demo.cwd / "livegate.key").unlink(missing_ok=True)


def test_simulator_walkthrough_runs_as_written(demo: Demo) -> None:
    blocks = re.findall(r"^```sh\n(.*?)^```$", DOC.read_text(), re.S | re.M)
    assert len(blocks) >= 8
    script = "\n".join(blocks)
    env = {**user_env(), "GW": demo.gw, "SIM": demo.sim}
    done = subprocess.run(
        ["bash", "-eu", "-c", script],
        cwd=demo.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    tokens = next(a for a in answers if "access_token" in a)
    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"].startswith("lg_at_")
    assert tokens["refresh_token"].startswith("lg_rt_")
    assert tokens["scope"] == "webcast:fetch user:info"
    assert tokens["expires_in"] == 3600
    userinfo = next(a for a in answers if "uniqueId" in a)
    assert userinfo["uniqueId"] == "curl_viewer"
    room = next(a for a in answers if "room_id" in a)
    assert room["is_live"] is True and room["room_id"] == demo_room(demo)["room_id"]
    # Section 10: a room of one's own, a gift streak and a like, a steady flow, the end.
    logs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[{")]
    gifts = next(log for log in logs if log[0]["type"] == "WebcastGiftMessage")
    assert [(g["gift"], g["repeat_count"], g["repeat_end"]) for g in gifts] == [
        ("Rose", 1, False),
        ("Rose", 2, False),
        ("Rose", 3, False),
        ("Rose", 3, True),
    ]
    assert any(log[0]["type"] == "WebcastLikeMessage" and log[0]["count"] == 5 for log in logs)
    assert "ended: HTTP 200" in done.stdout
    mine = [
        r
        for r in httpx.get(f"{demo.sim}/_sim/rooms", timeout=10).json()
        if r["title"] == "curl walkthrough"
    ]
    assert len(mine) == 1 and not mine[0]["live"] and mine[0]["event_count"] >= 6
    assert mine[0]["activity"]["rate_per_s"] == 0


async def sign_in_to_qr(page: Page, demo: Demo, shots: str | None = None) -> None:
    """From the sample app to the QR page, as the README says: Connect, then Continue."""
    first = await page.goto(demo.app)
    assert first is not None and first.headers.get("cache-control") == "no-store"
    if shots:
        await screenshot(page, f"{shots}-app-start")
    await page.get_by_role("link", name="Connect TikTok").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connect Sample LIVE app to your TikTok account"
    )
    await page.get_by_role("button", name="Continue with TikTok").click()
    await page.wait_for_url(re.compile(r"/tiktok/oauth/login/[^/?]+$"))


async def confirm_in_new_tab(context: BrowserContext, link: Locator, name: str) -> Page:
    """Follow the phone link: it opens the simulator's phone page in a new tab."""
    assert await link.get_attribute("target") == "_blank"
    assert "noopener" in (await link.get_attribute("rel") or "").split()
    async with context.expect_page() as opened:
        await link.click()
    tab = await opened.value
    await expect(tab.get_by_role("heading", level=1)).to_have_text(
        "Log in to TikTok on your computer?"
    )
    await tab.get_by_label(re.compile(r"create (a new |an )?account", re.I)).fill(name)
    await tab.get_by_role("button", name="Confirm").click()
    await expect(tab.get_by_role("heading", level=1)).to_have_text("Logged in")
    return tab


async def shows_connection(page: Page, demo: Demo, name: str) -> None:
    """The sign-in tab moved on to the app by itself, and the app shows the connection."""
    await page.wait_for_url(demo.app + "/")
    await expect(page.locator("#who")).to_contain_text(f"@{name}")
    await expect(page.locator("#scopes")).to_contain_text("Read LIVE events")
    await expect(page.locator("#chat-status")).to_have_text("connected to @demo_streamer")
    await expect(page.locator("#chat li").first).to_be_visible(timeout=30_000)
    kind = await page.evaluate("performance.getEntriesByType('navigation')[0].type")
    assert kind == "navigate", "the app page was reloaded"


@pytest.mark.browser
async def test_desktop_journey_through_the_phone_link_in_a_new_tab(
    demo: Demo, chromium: Browser
) -> None:
    console = Console()
    context = await chromium.new_context(viewport=DESKTOP)
    console.watch(context)
    missing: list[str] = []
    # No missing resource (a favicon, say); a 404 page asked for on purpose is no resource.
    context.on(
        "response",
        lambda r: (
            missing.append(r.url)
            if r.status == 404 and r.request.resource_type != "document"
            else None
        ),
    )
    try:
        page = await context.new_page()
        await sign_in_to_qr(page, demo, shots="demo")
        await screenshot(page, "demo-qr")
        link = page.get_by_role("link", name="On your phone? Open this sign-in in the TikTok app")
        name = "desk_" + secrets.token_hex(3)
        tab = await confirm_in_new_tab(context, link, name)
        await screenshot(tab, "demo-phone-tab")
        await shows_connection(page, demo, name)
        await screenshot(page, "demo-app-connected")
        # Closing the chat tab must not print a traceback (the Ctrl-C test reads the output).
        await page.close()
        fresh = await context.new_page()
        await fresh.goto(demo.app)
        await expect(fresh.locator("#who")).to_contain_text(f"@{name}")
        await fresh.close()
    finally:
        await context.close()
    assert missing == []
    assert console.csp_violations() == [], console.messages
    assert [m for m in console.messages if m.startswith("pageerror")] == []


@pytest.mark.browser
async def test_on_a_phone_the_qr_page_leads_with_open_in_the_tiktok_app(
    demo: Demo, chromium: Browser
) -> None:
    context = await chromium.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = await context.new_page()
        await sign_in_to_qr(page, demo)
        button = page.get_by_role("link", name="Open in the TikTok app", exact=True)
        await expect(button).to_be_visible()
        box = await button.bounding_box()
        qr = await page.locator("#qr").bounding_box()
        assert box is not None and qr is not None
        # A big button, above the code (which a phone cannot scan on its own screen).
        assert box["height"] >= 44 and box["width"] >= PHONE["width"] * 0.75, box
        assert box["y"] + box["height"] <= qr["y"], (box, qr)
        size = await button.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 16
        fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits
        await screenshot(page, "demo-qr-on-phone")
        name = "mob_" + secrets.token_hex(3)
        await confirm_in_new_tab(context, button, name)
        await shows_connection(page, demo, name)
    finally:
        await context.close()


def test_busy_port_is_one_line_naming_it(tmp_path: Path) -> None:
    base = consecutive_free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        (tmp_path / ".venv").symlink_to(VENV, target_is_directory=True)
        done = subprocess.run(
            [".venv/bin/livegate", "demo", "--port", str(base)],
            cwd=tmp_path,
            env=user_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {base + 1} (the TikTok simulator) is already in use" in lines[0]
    assert "make demo PORT=9000" in lines[0]


def test_closing_a_chat_and_ctrl_c_print_no_traceback(demo: Demo) -> None:
    """Runs last: it stops the demo. The browser journey before it closed a chat tab too."""
    user = sign_in_sample_app(demo, "quietwatcher")
    room_id = demo_room(demo)["room_id"]

    def viewers() -> int:
        r = httpx.get(f"{demo.sim}/_sim/rooms/{room_id}", timeout=10)
        return int(r.json()["ws_connections"])

    # A chat tab closes: livegate's connection to the room goes away, quietly (once the
    # stream's resume window, LIVEGATE_EVENTS_RESUME_LINGER, has passed).
    url = user.get("/chat/token").json()["url"]
    with httpx.stream("GET", url, timeout=30) as stream:
        lines = stream.iter_lines()  # kept: dropping the iterator closes the connection
        read_until_connected(lines)
        wait_for(lambda: viewers() >= 1, timeout=20, what="the chat's connection to the room")
    wait_for(lambda: viewers() == 0, timeout=45, what="the closed chat's connection to end")

    # Ctrl-C while a chat is open: the stream ends (no error: a client would reconnect) and
    # the demo stops, quietly.
    url = user.get("/chat/token").json()["url"]
    with httpx.stream("GET", url, timeout=30) as stream:
        lines = stream.iter_lines()
        read_until_connected(lines)
        demo.interrupt()
        rest = list(lines)
    assert not any(line.startswith("event: error") for line in rest), rest
    assert demo.stop() == 0
    out = demo.output()
    assert out.rstrip().endswith("livegate demo stopped."), out
    assert [sign for sign in TRACEBACK_SIGNS if sign in out] == [], out
