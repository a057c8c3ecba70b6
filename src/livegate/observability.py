"""What an operator sees of a running gateway: a request id on every request and its log
lines, HTTP metrics per route template, `/healthz`, `/readyz`, and `/metrics` behind a token.

`install(app, settings)` wires it all; `app.py` calls it once every router is in and the
other wrappers are on, so that `Observe` is the outermost layer: it sees every answer (the
size limits' refusals included) and the TCP peer before the trusted proxies' headers are
applied.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from functools import cached_property
from hashlib import sha256
from time import perf_counter
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livegate import health, metrics
from livegate.config import Settings
from livegate.errors import NO_STORE, LivegateError
from livegate.requestid import REQUEST_ID, new_request_id, valid_request_id

UNMATCHED = "unmatched"  # the route label of a request no route took (404s, early refusals)


class TrustedPeers:
    """Whether a TCP peer is one of LIVEGATE_TRUSTED_PROXIES (IPs or CIDRs; `*` for any)."""

    def __init__(self, entries: list[str]) -> None:
        self.any = "*" in entries
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.literals: set[str] = set()
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.literals.add(entry)  # a Unix socket path, as uvicorn allows
        self._seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self.any or bool(self.networks or self.literals)

    def __contains__(self, host: str) -> bool:
        known = self._seen.get(host)
        if known is None:
            known = self.any or host in self.literals or self._in_networks(host)
            if len(self._seen) < 10_000:
                self._seen[host] = known
        return known

    def _in_networks(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def static_paths(app: Any) -> frozenset[str]:
    """The paths of `app`'s routes that have no path parameter. A request answered before
    routing (a size limit's refusal) on one of these paths is labelled with the path itself:
    it is a template with nothing in it."""
    found: set[str] = set()
    pending, seen = [app], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for route in getattr(node, "routes", None) or ():
            path = getattr(route, "path", None)
            if isinstance(path, str) and "{" not in path and not isinstance(route, Mount):
                found.add(path)
        inner = getattr(node, "app", None)
        if inner is not None:
            pending.append(inner)
    return frozenset(found)


class Observe:
    """ASGI middleware: the request id (contextvar for the logs, `X-Request-Id` on the
    answer) and the HTTP metrics.

    A request id arriving in `X-Request-Id` is kept only from a trusted proxy, and only if
    it looks like one; otherwise, or without one, a new one is made. The route label is the
    matched route's template, never the raw path: paths hold sign-in ids and relay tickets.
    """

    def __init__(self, app: ASGIApp, trusted: TrustedPeers, root: Any) -> None:
        self.app = app
        self.trusted = trusted
        self.root = root  # the app whose routes name the labels

    @cached_property
    def _static(self) -> frozenset[str]:
        return static_paths(self.root)  # the first request comes after every route is in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = REQUEST_ID.set(request_id)
        try:
            if kind == "http":
                await self._http(scope, receive, send, request_id)
            else:
                await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = perf_counter()
        status = 500  # what uvicorn answers if the app fails before it does
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.observe_request(
                self._route(scope), scope["method"], status, perf_counter() - started
            )

    def _route(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        return scope["path"] if scope["path"] in self._static else UNMATCHED

    def _request_id(self, scope: Scope) -> str:
        client = scope.get("client")
        if self.trusted and client and client[0] in self.trusted:
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    offered = value.decode("latin-1")
                    if valid_request_id(offered):
                        return offered
                    break
        return new_request_id()


def metrics_router(token: str, gauges: metrics.DatabaseGauges) -> APIRouter:
    """`GET /metrics`, for a caller that presents `Authorization: Bearer <token>`."""
    router = APIRouter(tags=["operations"])
    expected = sha256(token.encode()).digest()

    @router.get(
        "/metrics",
        summary="Prometheus metrics of every worker of this instance (bearer token)",
        response_class=Response,
        responses={
            200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "text exposition"},
            401: {"description": "no or wrong token"},
        },
    )
    async def scrape(request: Request) -> Response:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        presented = sha256(given.strip().encode()).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, expected):
            raise LivegateError(
                401,
                "invalid_token",
                "GET /metrics takes Authorization: Bearer <LIVEGATE_METRICS_TOKEN>.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await anyio.to_thread.run_sync(metrics.render, gauges)
        return Response(body, media_type=metrics.CONTENT_TYPE, headers=NO_STORE)

    return router


def redis_ping(app: FastAPI) -> Callable[[], Any]:
    """PING through the rate limiter's own storage: the connection the app really uses."""
    storage = app.state.limiter.storage
    return storage.check


def install(app: FastAPI, settings: Settings) -> None:
    """`/healthz`, `/readyz`, `/metrics` (with LIVEGATE_METRICS_TOKEN) and `Observe` around
    everything. Call it last: `Observe` must wrap every other layer."""
    state = app.state
    state.readiness = health.ReadinessProbe(
        state.db, redis_ping(app) if settings.redis_url else None
    )
    app.include_router(health.router)
    if settings.metrics_token:
        gauges = metrics.DatabaseGauges(state.db, settings.server_keys)
        app.include_router(metrics_router(settings.metrics_token.get_secret_value(), gauges))
    trusted = TrustedPeers(settings.trusted_proxies)
    app.add_middleware(Observe, trusted=trusted, root=app)
