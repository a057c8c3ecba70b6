"""Fault injection: a matching fault delays, fails, empties, replaces or strips a response."""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from livegate.simulator.state import SimState


class FaultMiddleware:
    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        fault = self.state.take_fault(path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.drop_cookie_header:
            # TikTok behaves as if the request carried no cookies.
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"cookie"]
        if fault.body_hex is not None:
            body = bytes.fromhex(fault.body_hex)
            await Response(body, media_type="application/x-protobuf")(scope, receive, send)
            return
        if fault.status is not None or fault.empty_body:
            status = fault.status or 200
            body = b"" if fault.empty_body else b'{"status_code":%d,"message":"fault"}' % status
            await Response(body, status_code=status, media_type="application/json")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)
