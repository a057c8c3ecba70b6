"""Shared web plumbing: templates and the security headers of every response."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi.responses import FileResponse
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
    fetch path included, where MutableHeaders showed in the profile (docs/benchmarks.md).
    """
    raw = list(headers)
    present = dict(raw)  # ASGI header names are lower-case (the spec says so)
    raw += [pair for pair in _SECURITY_HEADERS if pair[0] not in present]
    return raw


class SecurityHeaders:
    """Every response: no framing, no sniffing, no referrer, a strict CSP. The one place they
    are set: it sits outside the size limits (limits.py), so their refusals get them too."""

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
