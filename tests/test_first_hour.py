"""What a new user meets in the first hour (issue 27), on the shared gateway: the webcast
API's answer for an account that exists but is not LIVE, the gateway's root page and favicon,
and every dashboard page on a 390 px phone screen (screenshots in test-artifacts/)."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from livegate.db.engine import Database
from tests.browser import (
    PHONE,
    Console,
    callback_app_fixture,  # noqa: F401
    chromium_fixture,  # noqa: F401
    expect,
    screenshot,
)
from tests.flows import authorize_url, query, sign_in
from tests.oauth_helpers import App, exchange
from tests.servers import ServerThread
from tests.webcast_helpers import User, new_room, new_user, sim_uid


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def viewer(gateway: ServerThread, sim: ServerThread, database: Database) -> User:
    return new_user(gateway.url, sim.url, database, uname("fh"))


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


def test_existing_account_that_is_not_live_is_user_offline(
    gateway: ServerThread, sim: ServerThread, viewer: User
) -> None:
    # TikTok's api-live/user/room says "user_not_found" for an account that has never gone
    # LIVE; the README promises user_offline for it, and user_not_found only for no account.
    never_live = uname("quiet")
    sim_uid(sim.url, never_live)
    auth = {"Authorization": f"Bearer {viewer.access_token}"}
    with httpx.Client(base_url=gateway.url, headers=auth, timeout=15) as gw:
        r = gw.get("/webcast/fetch", params={"unique_id": never_live})
        assert error_of(r, 404)["error"] == "user_offline"
        r = gw.get("/webcast/room_id", params={"unique_id": never_live})
        body = error_of(r, 200)
        assert body["is_live"] is False and body["live_state"] == "offline"
        assert body["room_id"] is None
        r = gw.post("/webcast/bulk_live_check", json={"unique_ids": [never_live]})
        assert error_of(r, 200) == {never_live: False}

        ghost = uname("ghost")
        r = gw.get("/webcast/fetch", params={"unique_id": ghost})
        assert error_of(r, 404)["error"] == "user_not_found"
        r = gw.get("/webcast/room_id", params={"unique_id": ghost})
        assert error_of(r, 404)["error"] == "user_not_found"

        # An ended LIVE is offline too, and a live one still resolves to its room.
        ended = uname("ended")
        room_id = new_room(sim.url, ended)
        httpx.delete(f"{sim.url}/_sim/rooms/{room_id}").raise_for_status()
        r = gw.get("/webcast/fetch", params={"unique_id": ended})
        assert error_of(r, 404)["error"] == "user_offline"
        live = uname("live")
        live_room = new_room(sim.url, live)
        body = error_of(gw.get("/webcast/room_id", params={"unique_id": live}), 200)
        assert body["is_live"] is True and body["room_id"] == live_room


# -- the gateway's root page and favicon -----------------------------------------------------


def test_root_page_links_the_dashboard_account_and_docs(gateway: ServerThread) -> None:
    page = httpx.get(f"{gateway.url}/", timeout=10)
    assert page.status_code == 200
    for href in ("/dashboard", "/account", "/docs", "/.well-known/oauth-authorization-server"):
        assert f'<a href="{href}">' in page.text
        assert httpx.get(f"{gateway.url}{href}", timeout=10).status_code in (200, 303)


def test_favicon_is_served_and_linked_from_every_page_kind(gateway: ServerThread) -> None:
    icon = httpx.get(f"{gateway.url}/favicon.ico", timeout=10)
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    linked = httpx.get(f"{gateway.url}/static/favicon.svg", timeout=10)
    assert linked.status_code == 200 and linked.content == icon.content
    assert icon.content.startswith(b"<svg")
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    for path in ("/", "/dashboard/login", "/account", "/tiktok/oauth/authorize?client_id=x"):
        assert link in httpx.get(f"{gateway.url}{path}", timeout=10).text, path


# -- the dashboard on a phone ---------------------------------------------------------------

# The page never scrolls sideways, and no table is cut off inside its scroll box.
FITS = """() => ({
  scroll: document.documentElement.scrollWidth,
  inner: window.innerWidth,
  cut: [...document.querySelectorAll('.table-wrap')]
    .filter(w => w.scrollWidth > w.clientWidth + 1)
    .map(w => w.querySelector('table')?.dataset.testid),
})"""
# Each chart label's size on screen: its font size times the SVG's scale.
LABEL_SIZES = """() => [...document.querySelectorAll('svg.chart text')].map(
  t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a)"""


@pytest.mark.browser
async def test_every_dashboard_page_fits_a_390px_screen(
    gateway: ServerThread,
    sim: ServerThread,
    callback_app: ServerThread,
    chromium: Browser,
) -> None:
    gw = gateway.url
    context = await chromium.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gw)
    console = Console()
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
        await _dashboard_on_a_phone(gw, sim, callback_app, context)
    finally:
        await context.close()
    assert missing == []
    assert console.csp_violations() == [], console.messages
    assert [m for m in console.messages if m.startswith("pageerror")] == []


async def fits(page: Page, name: str) -> None:
    result = await page.evaluate(FITS)
    assert result["scroll"] <= result["inner"], (name, result)
    assert result["cut"] == [], (name, result)
    await screenshot(page, f"phone-{name}")
    # The screenshot went through desktop width and back: still fits.
    assert await page.evaluate(FITS) == result


async def copies(page: Page, field_id: str, value: str) -> None:
    """The Copy button beside the field puts its value on the clipboard, and says so."""
    button = page.locator(f'button[data-copy="{field_id}"]')
    await expect(button).to_have_accessible_name("Copy")
    await button.click()
    await expect(button).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == value


async def _dashboard_on_a_phone(
    gw: str, sim: ServerThread, callback_app: ServerThread, context: BrowserContext
) -> None:
    page = await context.new_page()
    await page.goto(f"{gw}/")
    await fits(page, "home")
    await page.goto(f"{gw}/dashboard/login")
    await fits(page, "dashboard-login")
    await page.get_by_role("link", name="Create one").click()
    await fits(page, "dashboard-signup")
    email = f"phone-{secrets.token_hex(4)}@example.com"
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill("correct horse battery")
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(f"{gw}/dashboard/clients")
    await fits(page, "dashboard-clients-empty")

    await page.get_by_role("link", name="New client").click()
    await fits(page, "dashboard-client-new")
    redirect_uri = f"{callback_app.url}/callback"
    await page.get_by_label("Name", exact=True).fill("Stream overlay with a rather long name")
    await page.get_by_label("Redirect URIs").fill(redirect_uri)
    await page.locator('input[name="scope"][value="user:info"]').check()
    await page.get_by_role("button", name="Create client").click()
    await expect(page.get_by_role("heading", name="Your new client secret")).to_be_visible()
    secret = await page.get_by_test_id("client-secret").input_value()
    client_id = (await page.get_by_test_id("client-id").inner_text()).strip()
    await fits(page, "dashboard-client-secret")
    await copies(page, "client-secret", secret)
    # One "Client secret" heading at most, and rotating is offered, not reported as done.
    await expect(page.get_by_role("heading", name="Client secret", exact=True)).to_have_count(0)
    await expect(page.get_by_role("heading", name="Rotate the client secret")).to_be_visible()
    await expect(page.get_by_text(re.compile(r"^Rotating issues a new secret"))).to_be_visible()
    await page.reload()
    await fits(page, "dashboard-client")
    await page.goto(f"{gw}/dashboard/clients")
    await fits(page, "dashboard-clients")

    # A user authorizes the client, and it calls the webcast API: usage has something to show.
    app = App(client_id, secret, redirect_uri)
    url = authorize_url(gw, client_id, redirect_uri, "webcast:fetch user:info")
    code = query(await asyncio.to_thread(sign_in, gw, sim.url, url, uname("ph")))["code"]
    access = exchange(gw, app, code).json()["access_token"]
    room_id = httpx.get(
        f"{gw}/webcast/room_id",
        params={"unique_id": uname("nobody")},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert room_id.status_code == 404
    for window in ("24h", "30d"):
        await page.goto(f"{gw}/dashboard/clients/{client_id}/usage?window={window}")
        await expect(page.locator("svg.chart")).to_be_visible()
        sizes: list[float] = await page.evaluate(LABEL_SIZES)
        assert sizes and min(sizes) >= 11, (window, sizes)
        await fits(page, f"dashboard-usage-{window}")

    await page.goto(f"{gw}/dashboard/apikeys")
    await fits(page, "dashboard-apikeys-empty")
    await page.get_by_label("Name", exact=True).fill("stream overlay")
    await page.get_by_label("For client (optional)").select_option(value=client_id)
    await page.get_by_role("button", name="Create API key").click()
    await expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
    key = await page.get_by_test_id("api-key").input_value()
    await fits(page, "dashboard-apikeys-created")
    await copies(page, "api-key", key)
    # Every cell of the key's row is on screen, Status and Revoke included.
    row = page.get_by_test_id("apikeys").locator("tbody tr").first
    for cell in (row.get_by_text("active", exact=True), row.get_by_role("button")):
        box = await cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

    await page.goto(f"{gw}/dashboard/clients/lgc_nothing_here")
    await fits(page, "dashboard-error")

    account = await context.new_page()
    page = account
    await page.goto(f"{gw}/account")
    await fits(page, "account-signin")
    await page.get_by_role("button", name="Sign in with TikTok").click()
    await page.wait_for_url(re.compile(r"/tiktok/oauth/login/[^/?]+$"))
    await fits(page, "account-qr")
    href = await page.locator("#qr-link").get_attribute("href")
    assert href
    token = query(href)["token"]
    uid = sim_uid(sim.url, uname("acct"))
    for action in ("scan", "confirm"):
        r = httpx.post(f"{sim.url}/_sim/qr/{token}/{action}", json={"uid": uid}, timeout=10)
        assert r.status_code == 200, r.text
    await page.wait_for_url(f"{gw}/account")
    await expect(page.get_by_test_id("who")).to_be_visible()
    await fits(page, "account-apps")
