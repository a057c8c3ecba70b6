"""The dashboard and /account in a real browser (Playwright + Debian's chromium).

Sign up, create a client, read its secret once, authorize it through the consent and QR pages
(approving on the simulator's phone page), see it at /account, disconnect it: its token is
dead. Every page is screenshotted at desktop and phone width (test-artifacts/screenshots/) and
checked with axe-core (tests/node, `make node-deps`): no serious or critical violations.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser import (
    DESKTOP,
    PHONE,
    Console,
    callback_app_fixture,  # noqa: F401  # a fixture: pytest finds it by name
    chromium_fixture,  # noqa: F401  # a fixture: pytest finds it by name
    expect,
    query,
    screenshot,
)
from tests.servers import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.node, pytest.mark.asyncio(loop_scope="session")]

AXE = Path(__file__).resolve().parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery"
SCOPE = "webcast:fetch user:info"

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""


async def accessibility(page: Page, name: str) -> None:
    """axe-core at desktop and phone width: no serious or critical violation."""
    before = page.viewport_size
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        violations: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name} ({label}): {bad}"
    if before:
        await page.set_viewport_size(before)


async def check(page: Page, name: str) -> None:
    await screenshot(page, name)
    await accessibility(page, name)


async def desktop_context(chromium: Browser, console: Console) -> BrowserContext:
    context = await chromium.new_context(viewport=DESKTOP)
    # Injected through DevTools before any page script: the pages' CSP (script-src 'self')
    # stays in force, and axe is there for page.evaluate.
    await context.add_init_script(path=str(AXE))
    console.watch(context)
    return context


async def approve_on_phone(phone: Page, href: str, unique_id: str, existing: bool) -> None:
    resp = await phone.goto(href)
    assert resp is not None and resp.status == 200
    if existing:
        await phone.get_by_label(f"@{unique_id}").check()
    else:
        await phone.get_by_label(re.compile(r"create (a new |an )?account", re.I)).fill(unique_id)
    await phone.get_by_role("button", name="Confirm").click()
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Logged in")


async def test_dashboard_to_connected_apps(
    gateway: ServerThread,
    sim: ServerThread,
    callback_app: ServerThread,
    chromium: Browser,
) -> None:
    if not AXE.is_file():
        pytest.fail(f"axe-core missing at {AXE}: run `make node-deps`")
    console = Console()
    context = await desktop_context(chromium, console)
    phone_context = await chromium.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
    )
    try:
        await _journey(gateway, sim, callback_app, context, phone_context)
    finally:
        await context.close()
        await phone_context.close()
    assert console.csp_violations() == [], console.messages
    assert [m for m in console.messages if m.startswith("pageerror")] == []


async def _journey(
    gateway: ServerThread,
    sim: ServerThread,
    callback_app: ServerThread,
    context: BrowserContext,
    phone_context: BrowserContext,
) -> None:
    gw = gateway.url
    page = await context.new_page()

    # Sign-in page, then sign up.
    await page.goto(f"{gw}/dashboard/login")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign in to the developer dashboard"
    )
    await check(page, "dashboard-login")
    await page.get_by_role("link", name="Create one").click()
    await expect(page).to_have_url(f"{gw}/dashboard/signup")
    await check(page, "dashboard-signup")
    email = f"browser-{secrets.token_hex(4)}@example.com"
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(f"{gw}/dashboard/clients")
    await expect(page.get_by_test_id("who")).to_contain_text(email)
    await check(page, "dashboard-clients-empty")

    # Create a client; the secret is shown once.
    await page.get_by_role("link", name="New client").click()
    await expect(page).to_have_url(f"{gw}/dashboard/clients/new")
    await check(page, "dashboard-client-new")
    redirect_uri = f"{callback_app.url}/callback"
    await page.get_by_label("Name", exact=True).fill("Dashboard Browser App")
    await page.get_by_label("Description", exact=True).fill("Shows your LIVE chat on stream.")
    await page.get_by_label("Homepage", exact=True).fill("https://example.com/app")
    await page.get_by_label("Redirect URIs").fill(redirect_uri)
    await page.locator('input[name="scope"][value="user:info"]').check()
    await page.get_by_label("Consent page theme").select_option("light")
    await page.get_by_role("button", name="Create client").click()
    # POST-redirect-GET: the browser lands on the client's own page.
    await expect(page).to_have_url(re.compile(rf"^{re.escape(gw)}/dashboard/clients/lgc_[^/?]+$"))
    secret_box = page.get_by_test_id("client-secret")
    await expect(secret_box).to_be_visible()
    secret = await secret_box.input_value()
    client_id = (await page.get_by_test_id("client-id").inner_text()).strip()
    assert secret.startswith("lg_cs_") and client_id.startswith("lgc_")
    await check(page, "dashboard-client-secret")
    # Reloading shows the secret no more, and creates no second client.
    await page.reload()
    await expect(page.get_by_test_id("client-id")).to_have_text(client_id)
    await expect(page.get_by_test_id("client-secret")).to_have_count(0)
    assert secret not in await page.content()
    await check(page, "dashboard-client")
    await page.goto(f"{gw}/dashboard/clients")
    await expect(page.get_by_test_id("clients").get_by_text("Dashboard Browser App")).to_have_count(
        1
    )
    await check(page, "dashboard-clients")

    # A third-party app sends the user through consent and the QR sign-in.
    oauth = OAuth2Client(
        client_id,
        secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
    )
    url, state = oauth.create_authorization_url(f"{gw}/tiktok/oauth/authorize")
    await page.goto(url)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connect Dashboard Browser App to your TikTok account"
    )
    await expect(page.get_by_test_id("scopes")).to_contain_text("Read your profile")
    await check(page, "dashboard-consent")
    await page.get_by_role("button", name="Continue with TikTok").click()
    await page.wait_for_url(re.compile(r"/tiktok/oauth/login/[^/?]+$"))
    href = await page.locator("#qr-link").get_attribute("href")
    assert href
    await check(page, "dashboard-qr")
    user = "dash_" + secrets.token_hex(4)
    phone = await phone_context.new_page()
    await approve_on_phone(phone, href, user, existing=False)
    await page.wait_for_url(lambda u: u.startswith(redirect_uri + "?"))
    params = query(page.url)
    assert params["state"] == state and params["code"].startswith("lg_ac_")
    token: dict[str, Any] = await asyncio.to_thread(
        oauth.fetch_token, f"{gw}/tiktok/oauth/token", authorization_response=page.url
    )
    access = token["access_token"]
    async with httpx.AsyncClient(base_url=gw) as http:
        r = await http.get("/tiktok/oauth/userinfo", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 200 and r.json()["uniqueId"] == user

    # Usage and API keys.
    await page.goto(f"{gw}/dashboard/clients/{client_id}/usage")
    await expect(page.locator('[data-counter="authorizations_completed"]')).to_have_text("1")
    await expect(page.locator("svg.chart")).to_be_visible()
    await check(page, "dashboard-usage-24h")
    await page.get_by_role("link", name="Last 30 days").click()
    await expect(page).to_have_url(re.compile(r"window=30d"))
    await check(page, "dashboard-usage-30d")
    await page.goto(f"{gw}/dashboard/apikeys")
    await check(page, "dashboard-apikeys-empty")
    await page.get_by_label("Name", exact=True).fill("stream overlay")
    # Clients of the same name are told apart by their id.
    await page.get_by_label("For client (optional)").select_option(
        label=f"Dashboard Browser App ({client_id})"
    )
    await page.get_by_role("button", name="Create API key").click()
    await expect(page).to_have_url(f"{gw}/dashboard/apikeys")
    key_box = page.get_by_test_id("api-key")
    await expect(key_box).to_be_visible()
    key = await key_box.input_value()
    assert key.startswith("lg_ak_")
    await expect(page.get_by_test_id("apikeys")).to_contain_text(client_id)
    await check(page, "dashboard-apikeys-created")
    await page.reload()
    await expect(page.get_by_test_id("api-key")).to_have_count(0)
    await expect(page.get_by_test_id("apikeys").locator("tbody tr")).to_have_count(1)
    assert key not in await page.content()

    # Somebody else's client: 403 page.
    await page.goto(f"{gw}/dashboard/clients/lgc_nothing_here")
    await expect(page.get_by_test_id("error-message")).to_be_visible()
    await check(page, "dashboard-error")

    # The end user: /account, the same QR sign-in.
    account = await context.new_page()
    await account.goto(f"{gw}/account")
    await check(account, "account-signin")
    await account.get_by_role("button", name="Sign in with TikTok").click()
    await account.wait_for_url(re.compile(r"/tiktok/oauth/login/[^/?]+$"))
    href = await account.locator("#qr-link").get_attribute("href")
    assert href
    await check(account, "account-qr")
    await approve_on_phone(phone, href, user, existing=True)
    await account.wait_for_url(f"{gw}/account")
    await expect(account.get_by_test_id("who")).to_have_text(f"Signed in as @{user}")
    apps = account.get_by_test_id("apps")
    await expect(apps).to_contain_text("Dashboard Browser App")
    await expect(apps).to_contain_text("Read LIVE events")
    await expect(apps).to_contain_text("Read your profile")
    await check(account, "account-apps")

    # Disconnect: the app's token dies at once.
    await account.get_by_role("button", name="Disconnect Dashboard Browser App").click()
    await expect(account.get_by_role("status")).to_have_text(
        "Dashboard Browser App is disconnected."
    )
    await expect(account.get_by_test_id("no-apps")).to_be_visible()
    await check(account, "account-revoked")
    async with httpx.AsyncClient(base_url=gw) as http:
        r = await http.post(
            "/tiktok/oauth/introspect", data={"token": access}, auth=(client_id, secret)
        )
        assert r.status_code == 200 and r.json()["active"] is False
        r = await http.get("/tiktok/oauth/userinfo", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 401
        r = await http.get(
            "/webcast/room_id",
            params={"unique_id": user},
            headers={"Authorization": f"Bearer {access}"},
        )
        assert r.status_code == 401

    # Sign out of the dashboard.
    await page.goto(f"{gw}/dashboard/clients")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{gw}/dashboard/login")
