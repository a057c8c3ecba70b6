"""Shared web plumbing: templates, security headers, the Euler JSON envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
]


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
                # Raw header pairs, not MutableHeaders.setdefault: this runs on every
                # response, the webcast fetch path included, and that was 5% of its CPU.
                raw = list(message.get("headers", ()))
                present = {name.lower() for name, _ in raw}
                raw += [pair for pair in _SECURITY_HEADERS if pair[0] not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_wrapper)


class PrefixMount:
    """Requests under `prefix` go straight to `target`, ahead of the wrapped app's routing.

    Unlike `app.mount`, this sits in the middleware stack, so the target skips the outer
    app's router and exception handlers; the middleware added after it still wraps both.
    """

    def __init__(self, app: ASGIApp, prefix: str, target: ASGIApp) -> None:
        self.app = app
        self.prefix = prefix
        self.target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(self.prefix):
            await self.target(scope, receive, send)
        else:
            await self.app(scope, receive, send)


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def envelope(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The Euler SDKs' response shape around an RFC-shaped body."""
    if "error" in body and isinstance(body["error"], str):
        return {
            "code": status,
            "message": body.get("error_description") or body["error"],
            "data": None,
            "error": {"error": body["error"], "error_description": body.get("error_description")},
        }
    data = dict(body)
    if "scope" in data and "access_token" in data:
        data["scopes"] = str(data.pop("scope") or "").split()
    return {"code": status, "message": "OK", "data": data, "error": None}
