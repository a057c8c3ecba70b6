"""Playwright (async API) driving Debian's chromium, plus a tiny third-party callback app.

Never `playwright install`: the browser is /usr/bin/chromium from apt (`make browser-deps`).
When it is missing, every test that asks for a browser is skipped with the reason.
Test modules import the `*_fixture` functions; pytest knows them by their short names.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
)
from playwright.async_api import expect as pw_expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.servers import ServerThread

CHROMIUM = os.environ.get("LIVEGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

# Web-first assertions poll; the sign-in goes through a few 0.4-1.5 s polling loops.
pw_expect.set_options(timeout=15_000)
expect = pw_expect


# Browser tests skip only when told to: a missing chromium is otherwise a failure, so that a
# CI image without it cannot pass with the dashboard's pages untested.
NO_BROWSER = os.environ.get("LIVEGATE_TEST_NO_BROWSER") == "1"


def chromium_missing() -> str | None:
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return f"chromium not found at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)"


@pytest_asyncio.fixture(name="chromium", scope="session", loop_scope="session")
async def chromium_fixture() -> AsyncIterator[Browser]:
    if NO_BROWSER:
        pytest.skip("LIVEGATE_TEST_NO_BROWSER=1: this environment has no browser")
    reason = chromium_missing()
    if reason:
        pytest.fail(f"{reason}; or set LIVEGATE_TEST_NO_BROWSER=1 to skip browser tests")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Console:
    """Console errors/warnings and uncaught page errors seen by a browser context."""

    messages: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.messages.append(f"{msg.type}: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(self, error: Exception) -> None:
        self.messages.append(f"pageerror: {error}")

    def watch(self, context: BrowserContext) -> None:
        context.on("console", self.on_console)
        context.on("weberror", lambda e: self.on_page_error(e.error))

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "content security policy" in m.lower()]


@dataclass
class Browsing:
    """A desktop browser (the user's computer) and a phone, each its own cookie jar."""

    desktop: BrowserContext
    phone: BrowserContext
    console: Console


@pytest_asyncio.fixture(name="browsing", loop_scope="session")
async def browsing_fixture(chromium: Browser) -> AsyncIterator[Browsing]:
    console = Console()
    desktop = await chromium.new_context(viewport=DESKTOP)
    phone = await chromium.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    console.watch(desktop)
    console.watch(phone)
    try:
        yield Browsing(desktop, phone, console)
    finally:
        await desktop.close()
        await phone.close()


async def screenshot(page: Page, name: str) -> list[Path]:
    """Full-page PNGs of `page` at desktop and phone widths; the viewport is restored after."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{label}.png"
        await page.screenshot(path=str(path), full_page=True, animations="disabled")
        paths.append(path)
    if before:
        await page.set_viewport_size(before)
    return paths


# -- the third-party app's redirect endpoint ------------------------------------------------


async def _callback(request: Request) -> Response:
    params = dict(request.query_params)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(params)
    rows = "".join(
        f'<dt>{html.escape(k)}</dt><dd data-param="{html.escape(k)}">{html.escape(v)}</dd>'
        for k, v in params.items()
    )
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Callback</title></head>"
        f"<body><h1>Callback received</h1><dl>{rows}</dl>"
        f'<pre id="query">{html.escape(json.dumps(params, indent=2))}</pre></body></html>'
    )
    return HTMLResponse(body)


@pytest.fixture(name="callback_app", scope="session")
def callback_app_fixture() -> Iterator[ServerThread]:
    """A tiny app whose /callback shows the query it received (HTML, or JSON on Accept)."""
    # uvicorn.Config sets the global uvicorn.* logger levels; keep the gateway's (the log tests
    # read its access log), and keep this app's own requests out of that log.
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")]
    levels = [lg.level for lg in loggers]
    server = ServerThread(Starlette(routes=[Route("/callback", _callback)]))
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)
    server.server.config.access_log = False
    server.start()
    yield server
    server.stop()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
