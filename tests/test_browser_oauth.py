"""The sign-in pages in a real browser (Playwright + Debian's chromium): consent, QR, phone.

The user's computer and the phone are two browser contexts; the phone opens the URL the QR
code encodes (the simulator's phone page) and presses Confirm or Refuse there.
Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from playwright.async_api import Page

from livegate.db.engine import Database
from livegate.oauth.clients import create_client
from livegate.simulator.state import SimState
from tests.browser import (
    Browsing,
    browsing_fixture,  # noqa: F401  # a fixture: pytest finds it by name
    callback_app_fixture,  # noqa: F401  # a fixture: pytest finds it by name
    chromium_fixture,  # noqa: F401  # a fixture: pytest finds it by name
    expect,
    query,
    screenshot,
)
from tests.servers import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
spec = pytest.mark.spec

APP_NAME = "Browser Test App"
SCOPE = "webcast:fetch user:info"


@dataclass
class App:
    oauth: OAuth2Client
    redirect_uri: str
    authorize_url: str
    state: str
    token_url: str


def new_app(database: Database, gateway: ServerThread, callback: ServerThread) -> App:
    redirect_uri = f"{callback.url}/callback"
    with database.session() as session:
        new = create_client(
            session,
            name=APP_NAME,
            redirect_uris=[redirect_uri],
            scope=SCOPE,
            description="Reads your LIVE chat to show it on stream.",
        )
    oauth = OAuth2Client(
        new.row.client_id,
        new.client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
    )
    url, state = oauth.create_authorization_url(f"{gateway.url}/tiktok/oauth/authorize")
    return App(oauth, redirect_uri, url, state, f"{gateway.url}/tiktok/oauth/token")


def username() -> str:
    return "bt_" + secrets.token_hex(4)


async def open_consent(page: Page, app: App) -> None:
    response = await page.goto(app.authorize_url)
    assert response is not None and response.status == 200


async def continue_to_qr(page: Page) -> str:
    """Press "Continue with TikTok" and return the URL the QR code encodes."""
    await page.get_by_role("button", name="Continue with TikTok").click()
    await page.wait_for_url(re.compile(r"/tiktok/oauth/login/[^/?]+$"))
    await expect(page.get_by_role("img", name="QR code to sign in with TikTok")).to_be_visible()
    href = await page.locator("#qr-link").get_attribute("href")
    assert href and "/_sim/phone?token=" in href, href
    return href


def qr_token(href: str) -> str:
    return query(href)["token"]


async def wait_callback(page: Page, app: App) -> dict[str, str]:
    await page.wait_for_url(lambda url: url.startswith(app.redirect_uri + "?"))
    await expect(page.get_by_role("heading", name="Callback received")).to_be_visible()
    return query(page.url)


def assert_no_csp_violations(browsing: Browsing) -> None:
    assert browsing.console.csp_violations() == [], browsing.console.messages


@spec("RFC 6749", "4.1")
@spec("RFC 9207", "2")
async def test_full_flow_in_browser(
    gateway: ServerThread,
    sim: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    page = await browsing.desktop.new_page()

    # Consent: which app, what it may do, in plain words.
    await open_consent(page, app)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Connect {APP_NAME} to your TikTok account"
    )
    scopes = page.get_by_test_id("scopes")
    await expect(scopes.get_by_role("listitem")).to_have_count(2)
    await expect(scopes).to_contain_text("Read LIVE events")
    await expect(scopes).to_contain_text("Read your profile")
    await expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    await screenshot(page, "consent")

    # QR page.
    href = await continue_to_qr(page)
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-status", "new")
    await expect(status).to_have_text("Waiting for you to scan the code.")
    await screenshot(page, "qr")

    # The phone opens what the QR encodes: that is the scan.
    phone = await browsing.phone.new_page()
    resp = await phone.goto(href)
    assert resp is not None and resp.status == 200
    await expect(phone.get_by_role("heading", level=1)).to_have_text(
        "Log in to TikTok on your computer?"
    )
    await expect(status).to_have_attribute("data-status", "scanned")
    await expect(status).to_contain_text("Confirm the sign-in")
    await screenshot(phone, "phone")

    name = username()
    await phone.get_by_label(re.compile(r"create (a new |an )?account", re.I)).fill(name)
    await phone.get_by_role("button", name="Confirm").click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Logged in")

    # The QR page says who signed in, then login.js follows the final redirect to the app.
    await expect(page.get_by_test_id("signed-in-as")).to_have_text(f"Signed in as @{name}")
    params = await wait_callback(page, app)
    assert params["state"] == app.state
    assert params["iss"] == gateway.url
    assert params["code"].startswith("lg_ac_")
    assert set(params) == {"code", "state", "iss"}
    await expect(page.locator('[data-param="code"]')).to_have_text(params["code"])

    token: dict[str, Any] = await asyncio.to_thread(
        app.oauth.fetch_token, app.token_url, authorization_response=page.url
    )
    assert token["token_type"] == "Bearer"
    assert token["access_token"].startswith("lg_at_")
    assert token["refresh_token"].startswith("lg_rt_")
    assert token["scope"] == SCOPE
    async with httpx.AsyncClient() as http:
        info = await http.get(
            f"{gateway.url}/tiktok/oauth/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
    assert info.status_code == 200
    assert info.json()["uniqueId"] == name

    assert_no_csp_violations(browsing)


@spec("RFC 6749", "4.1.2.1")
async def test_refuse_on_phone(
    gateway: ServerThread,
    sim: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    page = await browsing.desktop.new_page()
    await open_consent(page, app)
    href = await continue_to_qr(page)

    phone = await browsing.phone.new_page()
    await phone.goto(href)
    await expect(page.locator("#status")).to_have_attribute("data-status", "scanned")
    await phone.get_by_role("button", name="Refuse").click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Login refused")

    params = await wait_callback(page, app)
    assert params["error"] == "access_denied"
    assert params["state"] == app.state
    assert params["iss"] == gateway.url
    assert "code" not in params
    assert_no_csp_violations(browsing)


@spec("RFC 6749", "4.1.2.1")
async def test_cancel_on_consent_page(
    gateway: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    page = await browsing.desktop.new_page()
    await open_consent(page, app)
    await page.get_by_role("button", name="Cancel").click()

    params = await wait_callback(page, app)
    assert params["error"] == "access_denied"
    assert params["state"] == app.state
    assert params["iss"] == gateway.url
    assert "code" not in params
    assert_no_csp_violations(browsing)


async def _start_qr(
    database: Database, gateway: ServerThread, callback: ServerThread, browsing: Browsing
) -> tuple[Page, str]:
    app = new_app(database, gateway, callback)
    page = await browsing.desktop.new_page()
    await open_consent(page, app)
    href = await continue_to_qr(page)
    # A marker that a reload would wipe out.
    await page.evaluate("window.__noReload = true")
    return page, href


async def test_expired_qr_is_replaced_without_reload(
    gateway: ServerThread,
    sim: ServerThread,
    sim_state: SimState,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    lifetime = sim_state.qr_lifetime
    sim_state.qr_lifetime = 2
    try:
        page, _ = await _start_qr(database, gateway, callback_app, browsing)
        img = page.locator("#qr")
        old_src = await img.get_attribute("src")
        old_href = await page.locator("#qr-link").get_attribute("href")
        assert old_src and old_href
        old_svg = await (await page.request.get(page.url + "/qr.svg")).text()

        await expect(img).not_to_have_attribute("src", old_src)
        assert await page.evaluate("window.__noReload === true"), "the page was reloaded"
        await expect(page.locator("#status")).to_have_attribute("data-status", "new")

        # TikTok issued a new token, and the image now encodes something else.
        await expect(page.locator("#qr-link")).not_to_have_attribute("href", old_href)
        async with httpx.AsyncClient() as http:
            pending = (await http.get(f"{sim.url}/_sim/qr")).json()
        assert pending and pending[0]["token"] != qr_token(old_href)
        new_svg = await (await page.request.get(page.url + "/qr.svg")).text()
        assert new_svg != old_svg
        await expect(img).to_be_visible()
    finally:
        sim_state.qr_lifetime = lifetime
    assert_no_csp_violations(browsing)


async def test_expired_qr_link_follows_new_qr(
    gateway: ServerThread,
    sim: ServerThread,
    sim_state: SimState,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    lifetime = sim_state.qr_lifetime
    sim_state.qr_lifetime = 2
    try:
        page, href = await _start_qr(database, gateway, callback_app, browsing)
        old_src = await page.locator("#qr").get_attribute("src")
        await expect(page.locator("#qr")).not_to_have_attribute("src", old_src or "")
        await expect(page.locator("#qr-link")).not_to_have_attribute("href", href, timeout=3_000)
    finally:
        sim_state.qr_lifetime = lifetime


async def test_verification_required_is_its_own_state(
    gateway: ServerThread,
    sim: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    page = await browsing.desktop.new_page()
    await open_consent(page, app)
    href = await continue_to_qr(page)

    name = username()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        account = (await http.post("/_sim/accounts", json={"unique_id": name})).json()
        r = await http.post(f"/_sim/qr/{qr_token(href)}/verify", json={"uid": account["uid"]})
        assert r.status_code == 200, r.text

    status = page.locator("#status")
    await expect(status).to_have_attribute("data-status", "verify")
    await expect(status).to_contain_text(re.compile(r"verif", re.IGNORECASE))
    await screenshot(page, "qr-verify")

    # After verifying on the phone, confirming still finishes the sign-in.
    phone = await browsing.phone.new_page()
    await phone.goto(href)
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Verify it's you, then log in")
    await phone.get_by_label(f"@{name}").check()
    await phone.get_by_role("button", name="Confirm").click()
    params = await wait_callback(page, app)
    assert params["state"] == app.state
    assert params["code"].startswith("lg_ac_")
    assert_no_csp_violations(browsing)


@spec("RFC 6749", "4.1.2.1")
@spec("RFC 9700", "4.1")
async def test_unregistered_redirect_uri_shows_error_page(
    gateway: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    evil = f"{callback_app.url}/evil"
    parts = urlsplit(app.authorize_url)
    params = [(k, evil if k == "redirect_uri" else v) for k, v in parse_qsl(parts.query)]
    url = urlunsplit(parts._replace(query=urlencode(params)))
    page = await browsing.desktop.new_page()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 400
    assert response.request.redirected_from is None
    assert page.url == url
    await expect(page.get_by_test_id("error-code")).to_have_text("invalid_request")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Something is wrong with this request"
    )
    await expect(page.get_by_role("button")).to_have_count(0)
    await screenshot(page, "error")
    assert_no_csp_violations(browsing)


async def test_consent_page_security_headers(
    gateway: ServerThread,
    database: Database,
    callback_app: ServerThread,
    browsing: Browsing,
) -> None:
    app = new_app(database, gateway, callback_app)
    page = await browsing.desktop.new_page()
    response = await page.goto(app.authorize_url)
    assert response is not None and response.status == 200
    headers = await response.all_headers()
    csp = headers["content-security-policy"]
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == ["'none'"]
    script_src = directives.get("script-src", directives.get("default-src"))
    assert script_src is not None
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert "'unsafe-inline'" not in directives.get("style-src", [])
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "no-store" in headers["cache-control"]
    # The CSRF field is on both forms, and the page itself loads cleanly under its CSP.
    await expect(page.locator('form input[name="csrf_token"]')).to_have_count(2)
    assert_no_csp_violations(browsing)
