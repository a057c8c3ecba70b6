"""/openapi.json describes every route the gateway serves (DESIGN.md: "Every route is in the
OpenAPI document"), and each /webcast operation with its credentials, scope, parameters and
error answers, as the running gateway serves the document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, Route

from tests.servers import ServerThread
from tests.test_webcast_api import ROUTES as SCOPED_ROUTES

spec = pytest.mark.spec
EVERY_ROUTE = ("livegate", "every route is in the OpenAPI document")

# FastAPI's own document and docs pages, and the static files: not API operations.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}
MOUNTS = {"/static"}
# Not in OpenAPI as such: the relay is described by GET /webcast/fetch, the event stream by
# its own GET operation (which answers 426 without an upgrade).
WEBSOCKETS = {"/webcast/ws/{ticket}/", "/webcast/events"}
ERROR_MODELS = {"WebcastError", "InvalidToken", "Forbidden", "RateLimited"}
SSE = "/webcast/rooms/{unique_id}/events"
CREDENTIALS = {"accessToken", "xOAuthToken", "apiKey", "apiKeyQuery"}


@pytest.fixture(scope="module")
def app(gateway: ServerThread) -> FastAPI:
    served = gateway.server.config.app
    assert isinstance(served, FastAPI)
    return served


@pytest.fixture(scope="module")
def document(gateway: ServerThread) -> dict[str, Any]:
    r = httpx.get(gateway.url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def webcast_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        if path.startswith("/webcast/")
        for method, op in ops.items()
    ]


@spec(*EVERY_ROUTE)
def test_the_document_lists_exactly_the_operations_the_gateway_serves(
    app: FastAPI, document: dict[str, Any]
) -> None:
    served: set[tuple[str, str]] = set()
    hidden: set[tuple[str, str]] = set()
    websockets: set[str] = set()
    framework: set[str] = set()
    mounts: set[str] = set()
    for ctx in iter_route_contexts(app.routes):
        route, path = ctx.original_route, str(ctx.path_format)
        if isinstance(route, APIWebSocketRoute):
            websockets.add(path)
        elif isinstance(route, APIRoute):
            found = {(m, path) for m in ctx.methods or ()}
            (served if ctx.include_in_schema else hidden).update(found)
        elif isinstance(route, Mount):
            mounts.add(route.path)
        elif isinstance(route, Route):
            framework.add(path)
        else:
            raise AssertionError(f"a route of an unexpected kind: {route!r}")
    assert operations(document) == served
    assert hidden == set()
    assert websockets == WEBSOCKETS
    assert framework == FRAMEWORK_PATHS
    assert mounts == MOUNTS
    assert any(p.startswith("/webcast/") for _, p in served)
    assert any(p.startswith("/tiktok/oauth/") for _, p in served)
    assert ("GET", "/.well-known/oauth-authorization-server") in served
    assert {("GET", "/"), ("GET", "/dashboard"), ("GET", "/account")} <= served


@spec(*EVERY_ROUTE)
def test_every_webcast_operation_names_its_credentials_scope_and_errors(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {"accessToken", "xOAuthToken", "apiKey", "apiKeyQuery"} <= schemes.keys()
    assert schemes["accessToken"]["type"] == "oauth2"
    scopes = schemes["accessToken"]["flows"]["authorizationCode"]["scopes"]
    webcast = webcast_operations(document)
    assert len(webcast) == 15
    for method, path, op in webcast:
        where = f"{method} {path}"
        needed = op["x-scopes"]
        assert set(needed) <= scopes.keys(), where
        alternatives = {name for requirement in op["security"] for name in requirement}
        # The SSE stream also takes a browser token in the query (EventSource sends no header).
        assert alternatives == CREDENTIALS | ({"jwtKey"} if path == SSE else set()), where
        for requirement in op["security"]:
            assert list(requirement.values()) == [needed], where
        responses = op["responses"]
        # The event stream is a WebSocket: its GET operation answers 426 without an upgrade.
        ok = "426" if path == "/webcast/events" else "200"
        assert {ok, "400", "401", "403", "429", "500", "default"} <= responses.keys(), where
        assert "422" not in responses, where  # validation errors are 400 here
        for status in ("400", "401", "403", "429", "default"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema["$ref"].rsplit("/", 1)[1] in ERROR_MODELS, (where, status)
        assert "Retry-After" in responses["429"]["headers"], where
        assert "RateLimit-Remaining" in responses["429"]["headers"], where
        # It calls TikTok: its failures are documented too (POST /webcast/jwt checks the
        # token's scope for the streams it opens later, and calls nothing).
        if needed and path != "/webcast/jwt":
            assert {"404", "502", "504"} <= responses.keys(), where
        if path != SSE:  # the stream signs with the credential's own session or none
            assert "x-cookie-header" in {p["name"] for p in op.get("parameters", [])}, where


def test_the_documented_scope_is_the_one_each_route_enforces(document: dict[str, Any]) -> None:
    ops = {(m, p): op for m, p, op in webcast_operations(document)}
    templates = {p.replace("{room_id}", "1"): p for _, p in ops}
    for scope, method, url, _body in SCOPED_ROUTES:
        path = templates[url.split("?")[0]]
        assert ops[(method, path)]["x-scopes"] == [scope], (method, path)
    assert ops[("GET", "/webcast/rate_limits")]["x-scopes"] == []


def test_webcast_errors_are_documented_in_the_shape_they_are_sent(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    for name in ERROR_MODELS:
        assert {"code", "message", "error"} <= set(schemas[name]["required"]), name
    assert "scope" in schemas["Forbidden"]["properties"]
    assert {"limit_label", "retry_after"} <= set(schemas["RateLimited"]["required"])


def test_the_fetch_routes_document_their_protobuf_body_and_the_relay(
    document: dict[str, Any],
) -> None:
    for method, path in (
        ("get", "/webcast/fetch"),
        ("post", "/webcast/fetch"),
        ("get", "/webcast/rooms/{room_id}/connect"),
    ):
        ok = document["paths"][path][method]["responses"]["200"]
        assert set(ok["content"]) == {"application/x-protobuf"}, (method, path)
        assert {"X-Set-TT-Cookie", "x-room-id"} <= ok["headers"].keys()
    fetch = document["paths"]["/webcast/fetch"]["get"]
    assert "/webcast/ws/{ticket}/" in fetch["description"]
    assert "4401" in fetch["description"]
    params = {p["name"] for p in fetch["parameters"]}
    assert {"room_id", "unique_id", "cursor", "client_enter", "session_id"} <= params


def test_the_event_stream_documents_its_media_type_resumption_and_errors(
    document: dict[str, Any],
) -> None:
    op = document["paths"][SSE]["get"]
    assert set(document["paths"][SSE]) == {"get"}
    ok = op["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}
    assert "Access-Control-Allow-Origin" in ok["headers"]
    for status in ("400", "401", "403", "404", "429", "502"):
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].rsplit("/", 1)[1] in ERROR_MODELS, status
    params = {(p["in"], p["name"]) for p in op["parameters"]}
    assert {("path", "unique_id"), ("query", "lastEventId"), ("header", "Last-Event-ID")} <= params
    schemes = document["components"]["securitySchemes"]
    assert schemes["jwtKey"] == {
        "type": "apiKey",
        "in": "query",
        "name": "jwtKey",
        "description": schemes["jwtKey"]["description"],
    }
    for words in ("Last-Event-ID", "event: gap", "event: error", "keepalive", "4401"):
        assert words in op["description"], words


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    schemas = document["components"]["schemas"]
    missing = {ref for ref in refs if ref.removeprefix("#/components/schemas/") not in schemas}
    assert missing == set()
