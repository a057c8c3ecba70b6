"""Shared web plumbing: templates, security headers, the gateway app."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


async def favicon() -> FileResponse:
    """`/favicon.ico`, which browsers ask for whatever a page links: livegate's SVG icon."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
]


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's raw header pairs plus each security header it does not set itself.

    Raw pairs, not MutableHeaders.setdefault: this runs on every response, the webcast
    fetch path included, and that was 5% of its CPU.
    """
    raw = list(headers)
    present = dict(raw)  # ASGI header names are lower-case (the spec says so)
    raw += [pair for pair in _SECURITY_HEADERS if pair[0] not in present]
    return raw


class SecurityHeaders:
    """Every response: no framing, no sniffing, no referrer; HTML gets a strict CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Gateway(FastAPI):
    """FastAPI, plus apps that answer a whole path prefix ahead of every FastAPI layer.

    A prefix app gets the request before FastAPI's error, telemetry and body-limit
    middleware, the middleware added with `add_middleware`, its exception handlers and its
    router: it must answer every failure and set its own security headers. `/webcast/` is
    one (api/routes.py); it runs on every LIVE poll, where those layers did nothing but
    cost time. What must cover every request, prefix apps included (the size limits), goes
    around both with `wrap`.

    Ahead of everything, for a request whose peer is one of `trusted_proxies` (IPs or
    CIDRs), uvicorn's ProxyHeadersMiddleware takes the client address and scheme from
    X-Forwarded-For and X-Forwarded-Proto. It sits here, not in uvicorn's config, so that
    every server running the app (`livegate serve`, the demo, the tests') trusts the same
    proxies; they run uvicorn with `proxy_headers=False`, as uvicorn's own default trusts
    127.0.0.1, which would let any local process choose its address.
    """

    def __init__(self, *, trusted_proxies: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._first: list[tuple[str, ASGIApp]] = []
        self._entry: ASGIApp = self._dispatch
        if trusted_proxies:
            # uvicorn types ASGI callables more narrowly than Starlette: the same protocol.
            proxies = ProxyHeadersMiddleware(cast(Any, self._dispatch), trusted_proxies)
            self._entry = cast(ASGIApp, proxies)

    def serve_first(self, prefix: str, app: ASGIApp) -> None:
        self._first.append((prefix, app))

    def wrap(self, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
        """Put `middleware` around everything, the prefix apps included (`add_middleware`
        covers only what FastAPI itself serves)."""
        self._entry = middleware(self._entry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            for prefix, app in self._first:
                if path.startswith(prefix):
                    scope["app"] = self  # request.app, as FastAPI would set it
                    await app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)
