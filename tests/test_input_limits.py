"""Input the gateway must refuse, in the caller's dialect and never with a 500: numeric ids that
are not ASCII digits or cannot exist, JSON nested too deep or holding a lone surrogate, webcast
fields TikTok would never accept (refused before any upstream call), and requests over the
size limits (413 for a body, 431 for header fields, 414 for a URL), answered before the rest
of the request is read.

The size tests speak HTTP/1.1 over a plain socket: they must send a Content-Length the body
never reaches, a chunked body, or a head that never ends, which an HTTP client would not.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.ids import MAX_ID
from livegate.limits import OAUTH_MAX_BODY, server_limits
from livegate.webcast.routing import WebcastRoute
from tests.servers import ServerThread, free_port
from tests.test_dashboard import AccountBrowser, csrf_of, developer
from tests.webcast_helpers import User, extra_gateway, new_room

spec = pytest.mark.spec
MiB = 1024 * 1024

# -- a minimal HTTP/1.1 client over a socket ------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after this answer

    def json(self) -> Any:
        return json.loads(self.body)


def head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, request: bytes, pieces: Iterable[bytes] = ()) -> Answer:
    """Send `request` then each piece; read one answer. The server may stop taking bytes
    before they are all sent (that is what some tests check), so send errors are ignored."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(request)
            for piece in pieces:
                sock.sendall(piece)
        except OSError:
            pass
        return read_answer(sock)


def read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data[:200]!r}"
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the answer's body"
        body += chunk
    closed = False
    if headers.get("connection", "").lower() == "close":
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
    return Answer(int(status_line.split()[1]), headers, body, closed)


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)


# -- what each dialect's error looks like -----------------------------------------------------


def assert_webcast_error(status: int, body: Any, code: int) -> dict[str, Any]:
    assert status == code, (status, body)
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body
    assert "Traceback" not in body["message"]
    return dict(body)


def assert_oauth_error(status: int, body: Any, code: int) -> None:
    assert status == code, (status, body)
    assert body["error"] == "invalid_request" and body["error_description"], body


def assert_envelope_error(status: int, body: Any, code: int) -> None:
    """The Euler SDKs' envelope, which a JSON request to an OAuth endpoint gets."""
    assert status == code, (status, body)
    assert body["code"] == code and body["data"] is None, body
    assert body["error"]["error"] == "invalid_request" and body["message"], body


def assert_page(r: httpx.Response | Answer, code: int) -> None:
    status = r.status_code if isinstance(r, httpx.Response) else r.status
    text = r.text if isinstance(r, httpx.Response) else r.body.decode()
    assert status == code, (status, text[:300])
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert "<html" in text and "Traceback" not in text


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def log_start(log_buffer: io.StringIO, gateway: ServerThread) -> int:
    """Where the server log stood before this module's first test."""
    return len(log_buffer.getvalue())


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def small_sizes(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A gateway with small limits, so that bodies past them stay small too."""
    server = extra_gateway(gateway_settings, max_body_bytes=8192, max_header_bytes=2048)
    yield server
    server.stop()


def sim_requests_since(sim: ServerThread, since: float) -> list[dict[str, Any]]:
    """What the gateway asked the simulator's webcast side (its own log) since `since`."""
    r = httpx.get(f"{sim.url}/_sim/requests", timeout=10)
    r.raise_for_status()
    return [e for e in r.json() if e["at"] >= since]


# -- numeric ids ------------------------------------------------------------------------

MALFORMED_IDS = ["²", "١٢", "1²", "abc", "-1", "+1", "1_0", " 1", "1.0", "0x1", ""]
IMPOSSIBLE_IDS = ["0", str(MAX_ID + 1), str(2**63), str(2**64), "9" * 30, "9" * 5000]


@spec("livegate", "security: numeric ids are ASCII digits in the database's range, else 4xx")
def test_dashboard_ids_that_are_not_ascii_numbers_or_cannot_exist_get_a_page(
    gateway: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    dash.get("/dashboard/apikeys")
    for bad, status in [
        *((b, 400) for b in MALFORMED_IDS if b),
        *((b, 404) for b in IMPOSSIBLE_IDS),
    ]:
        r = dash.http.post(f"/dashboard/apikeys/{bad}/revoke", data={"csrf_token": dash.csrf})
        assert_page(r, status)
    # A well-formed id of no key is the same 404 page; a malformed one never reaches a lookup.
    assert_page(
        dash.http.post("/dashboard/apikeys/123456/revoke", data={"csrf_token": dash.csrf}), 404
    )


@spec("livegate", "security: numeric ids are ASCII digits in the database's range, else 4xx")
def test_account_ids_that_are_not_ascii_numbers_or_cannot_exist_get_a_page(
    gateway: ServerThread, sim: ServerThread
) -> None:
    acct = AccountBrowser(gateway.url)
    page = acct.sign_in(sim.url, uname("acctid"))
    csrf = csrf_of(page.text)
    for bad in MALFORMED_IDS:
        assert_page(acct.http.get("/account", params={"revoked": bad}), 400)
        if bad:
            r = acct.http.post(f"/account/apps/{bad}/revoke", data={"csrf_token": csrf})
            assert_page(r, 400)
    for bad in IMPOSSIBLE_IDS:
        assert_page(acct.http.get("/account", params={"revoked": bad}), 404)
        r = acct.http.post(f"/account/apps/{bad}/revoke", data={"csrf_token": csrf})
        assert_page(r, 404)
    # The page itself still works, with or without a well-formed id.
    assert acct.http.get("/account", params={"revoked": "42"}).status_code == 200
    assert acct.http.get("/account").status_code == 200


# -- JSON bodies ------------------------------------------------------------------------

DEEP = b"[" * 50_000  # under the OAuth endpoints' 64 KiB: read, then refused
DEEP_OBJECT = b'{"a":' * 10_000
SURROGATE = b'{"unique_ids": ["\\ud800"]}'
JSON = {"content-type": "application/json"}


@spec("RFC 8259", "9")
def test_deeply_nested_json_is_400_on_webcast_and_oauth_endpoints(
    gateway: ServerThread, user: User
) -> None:
    key = {"X-Api-Key": user.api_key, **JSON}
    for path in ("/webcast/fetch", "/webcast/bulk_live_check", "/webcast/chat"):
        for body in (DEEP, DEEP_OBJECT):
            r = httpx.post(gateway.url + path, content=body, headers=key, timeout=15)
            assert_webcast_error(r.status_code, r.json(), 400)
    for path in ("token", "revoke", "introspect", "validate-refresh"):
        for body in (DEEP, DEEP_OBJECT):
            r = httpx.post(f"{gateway.url}/tiktok/oauth/{path}", content=body, headers=JSON)
            assert_envelope_error(r.status_code, r.json(), 400)


@spec("RFC 8259", "8.2")
def test_a_lone_surrogate_in_json_is_400_on_webcast_and_oauth_endpoints(
    gateway: ServerThread, user: User
) -> None:
    key = {"X-Api-Key": user.api_key, **JSON}
    r = httpx.post(gateway.url + "/webcast/bulk_live_check", content=SURROGATE, headers=key)
    assert_webcast_error(r.status_code, r.json(), 400)
    r = httpx.post(
        gateway.url + "/webcast/fetch", content=b'{"unique_id": "a\\udfff"}', headers=key
    )
    assert_webcast_error(r.status_code, r.json(), 400)
    body = b'{"grant_type": "refresh_token", "refresh_token": "\\ud800", "client_id": "x"}'
    for path in ("token", "revoke", "introspect", "validate-refresh"):
        r = httpx.post(f"{gateway.url}/tiktok/oauth/{path}", content=body, headers=JSON)
        assert_envelope_error(r.status_code, r.json(), 400)


# -- webcast fields, refused before any upstream call -----------------------------------


@spec("livegate", "security: webcast input is bounded before any upstream call")
def test_webcast_fields_tiktok_would_never_accept_are_400_and_never_reach_upstream(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    key = {"X-Api-Key": user.api_key}
    token = {"Authorization": f"Bearer {user.access_token}"}
    gw = httpx.Client(base_url=gateway.url, timeout=15)
    since = time.time()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/webcast/fetch", {"params": {"room_id": "²"}}),
        ("GET", "/webcast/fetch", {"params": {"room_id": "1" * 21}}),
        ("GET", "/webcast/fetch", {"params": {"unique_id": "a" * 65}}),
        ("GET", "/webcast/fetch", {"params": {"unique_id": "some one"}}),
        ("GET", "/webcast/fetch", {"params": {"room_id": "7", "cursor": "c" * 257}}),
        ("GET", "/webcast/fetch", {"params": {"room_id": "7", "user_agent": "Mozilla\r\nX: y"}}),
        ("GET", "/webcast/fetch", {"params": {"room_id": "7", "user_agent": "Mozillä"}}),
        ("GET", "/webcast/rooms/²/connect", {}),
        ("GET", "/webcast/rooms/0/connect", {"params": {"unique_id": "ü" * 3}}),
        ("GET", "/webcast/room_id", {"params": {"unique_id": "x" * 1000}}),
        ("GET", "/webcast/room_info", {"params": {"room_id": "١٢٣"}}),
        ("GET", "/webcast/rooms/12a/room_info", {}),
        ("GET", "/webcast/rankings", {"params": {"region": "U S"}}),
        ("GET", "/webcast/rankings", {"params": {"rank_type": "r" * 33}}),
        ("POST", "/webcast/rankings", {"json": {"region": "<script>"}}),
        ("POST", "/webcast/fetch", {"json": {"unique_id": "A" * 900_000}}),
        ("POST", "/webcast/fetch", {"json": {"room_id": -5}}),
        ("POST", "/webcast/fetch", {"json": {"room_id": "7", "cursor": "\x00"}}),
        ("POST", "/webcast/bulk_live_check", {"json": {"user_numeric_ids": ["²"]}}),
        ("POST", "/webcast/bulk_live_check", {"json": {"user_numeric_ids": [2**70]}}),
        ("POST", "/webcast/bulk_live_check", {"json": {"user_numeric_ids": [True]}}),
        ("POST", "/webcast/bulk_live_check", {"json": {"unique_ids": ["ok", "a/b"]}}),
        ("POST", "/webcast/chat", {"json": {"content": "hi", "target_room_id": "²"}}),
        ("POST", "/webcast/rooms/²/chat", {"json": {"content": "hi"}}),
    ]
    for method, path, kw in calls:
        headers = token if "chat" in path else key
        r = gw.request(method, path, headers=headers, **kw)
        body = assert_webcast_error(r.status_code, r.json(), 400)
        assert body["error"] == "invalid_request", (path, kw, body)
    assert sim_requests_since(sim, since) == []
    # The check can fail: a well-formed call in the same way does reach the simulator.
    room = new_room(sim.url, uname("limitsroom"))
    assert gw.get("/webcast/room_info", params={"room_id": room}, headers=key).status_code == 200
    assert [e["path"] for e in sim_requests_since(sim, since)] == ["/webcast/room/info/"]


@spec("livegate", "security: webcast input is bounded before any upstream call")
@spec("RFC 9110", "15.5.14")
def test_a_50_mb_unique_id_is_refused_unread_and_never_reaches_the_simulator(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    since = time.time()
    start = b'{"unique_id": "'
    length = len(start) + 50 * MiB + len(b'"}')
    headers = [("X-Api-Key", user.api_key), ("Content-Type", "application/json")]
    request = head("POST", "/webcast/fetch", [*headers, ("Content-Length", str(length))])
    # Only the first 64 KiB are ever sent: the answer cannot wait for the rest.
    answer = exchange(gateway.port, request, [start + b"A" * (64 * 1024)])
    assert_webcast_error(answer.status, answer.json(), 413)
    assert answer.closed
    # In the query string it is over the URL limit (uvicorn itself refuses URLs over 64 KiB).
    target = "/webcast/fetch?unique_id=" + "A" * (60 * 1024)
    answer = exchange(gateway.port, head("GET", target, [("X-Api-Key", user.api_key)]))
    assert_webcast_error(answer.status, answer.json(), 414)
    assert sim_requests_since(sim, since) == []


# -- body and header sizes --------------------------------------------------------------


@spec("RFC 9110", "15.5.14")
def test_a_content_length_over_the_limit_is_413_at_once_in_each_dialect(
    gateway: ServerThread, user: User
) -> None:
    big = str(50 * MiB)
    cases = [
        ("/webcast/fetch", [("X-Api-Key", user.api_key), ("Content-Type", "application/json")]),
        ("/webcast/bulk_live_check", [("Content-Type", "application/json")]),
        ("/tiktok/oauth/token", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("/tiktok/oauth/revoke", [("Content-Type", "application/json")]),
        ("/dashboard/login", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("/account/login", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("/tiktok/oauth/login/x/start", [("Content-Type", "application/x-www-form-urlencoded")]),
    ]
    for path, headers in cases:
        request = head("POST", path, [*headers, ("Content-Length", big)])
        answer = exchange(gateway.port, request, [b"a=1&b="])
        assert answer.closed, path
        if path.startswith("/webcast"):
            assert_webcast_error(answer.status, answer.json(), 413)
        elif path.startswith(("/dashboard", "/account", "/tiktok/oauth/login")):
            assert_page(answer, 413)
        elif headers[0][1] == "application/json":  # the Euler SDKs' envelope
            body = answer.json()
            assert answer.status == 413 and body["code"] == 413 and body["data"] is None, body
            assert body["error"]["error"] == "invalid_request", body
        else:
            assert_oauth_error(answer.status, answer.json(), 413)
    # The OAuth endpoints take at most 64 KiB, whatever the general limit.
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    over = [*form, ("Content-Length", str(OAUTH_MAX_BODY + 1))]
    answer = exchange(gateway.port, head("POST", "/tiktok/oauth/token", over), [b"a=b"])
    assert_oauth_error(answer.status, answer.json(), 413)


@spec("RFC 9110", "15.5.14")
def test_a_chunked_body_that_grows_past_the_limit_is_413_and_no_more_is_read(
    small_sizes: ServerThread, user: User
) -> None:
    kib = b"x" * 1024
    cases = [
        ("/webcast/fetch", [("X-Api-Key", user.api_key), ("Content-Type", "application/json")]),
        ("/tiktok/oauth/token", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("/tiktok/oauth/introspect", [("Content-Type", "application/json")]),
        ("/dashboard/login", [("Content-Type", "application/x-www-form-urlencoded")]),
    ]
    for path, headers in cases:
        request = head("POST", path, [*headers, ("Transfer-Encoding", "chunked")])
        # 9 KiB: one chunk past the 8 KiB limit, and the body's end is never sent.
        answer = exchange(small_sizes.port, request, chunked([kib] * 9))
        assert answer.status == 413, (path, answer)
        assert answer.closed, path
        if path.startswith("/webcast"):
            assert_webcast_error(answer.status, answer.json(), 413)
        elif path.startswith("/dashboard"):
            assert_page(answer, 413)
    # Under the limit, a chunked body is read as usual.
    body = json.dumps({"unique_id": "a" * 65}).encode()
    headers = [("X-Api-Key", user.api_key), ("Content-Type", "application/json")]
    request = head("POST", "/webcast/fetch", [*headers, ("Transfer-Encoding", "chunked")])
    answer = exchange(small_sizes.port, request, [*chunked([body[:10], body[10:]]), b"0\r\n\r\n"])
    assert_webcast_error(answer.status, answer.json(), 400)
    assert "unique_id" in answer.json()["message"]


@spec("RFC 6585", "5")
def test_header_fields_over_the_limit_are_431_in_each_dialect(gateway: ServerThread) -> None:
    big = [("X-Padding", "p" * (17 * 1024))]
    for path, page in [
        ("/webcast/rate_limits", False),
        ("/tiktok/oauth/userinfo", False),
        ("/.well-known/oauth-authorization-server", False),
        ("/dashboard/login", True),
        ("/account", True),
    ]:
        answer = exchange(gateway.port, head("GET", path, big))
        if page:
            assert_page(answer, 431)
        elif path.startswith("/webcast"):
            assert_webcast_error(answer.status, answer.json(), 431)
        else:
            assert_oauth_error(answer.status, answer.json(), 431)
        assert answer.closed
    # Many small fields count together.
    many = [(f"X-F{i}", "v" * 100) for i in range(200)]
    assert exchange(gateway.port, head("GET", "/webcast/rate_limits", many)).status == 431
    # Just under the limit is served.
    r = httpx.get(
        gateway.url + "/.well-known/oauth-authorization-server",
        headers={"X-Padding": "p" * (15 * 1024)},
    )
    assert r.status_code == 200, r.text[:200]


@spec("RFC 9110", "15.5.15")
def test_a_url_over_the_limit_is_414(gateway: ServerThread) -> None:
    answer = exchange(
        gateway.port, head("GET", "/tiktok/oauth/authorize?state=" + "s" * 17_000, [])
    )
    assert_page(answer, 414)
    answer = exchange(gateway.port, head("GET", "/webcast/" + "p" * 17_000, []))
    assert_webcast_error(answer.status, answer.json(), 414)


@pytest.fixture(scope="module")
def served(gateway_settings: Settings) -> Iterator[ServerThread]:
    """The gateway under the uvicorn options `livegate serve` uses (server_limits)."""
    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    server = ServerThread(create_app(settings, Database(settings.db_url)), port=port)
    for name, value in server_limits(settings).items():
        setattr(server.server.config, name, value)
    server.start()
    yield server
    server.stop()


@spec("RFC 6585", "5")
def test_serve_answers_431_to_a_head_over_the_limit_before_the_head_ends(
    served: ServerThread,
) -> None:
    """An 8 MB header line: `livegate serve` stops reading it (431, connection closed) while
    it is still arriving. Its end is never sent, so any answer proves the refusal came early."""
    line = b"GET /webcast/rate_limits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    answer = exchange(served.port, line, [b"a" * (64 * 1024)] * 128)
    assert answer.status == 431, answer
    assert answer.closed
    # A request within the limit is served as usual.
    r = httpx.get(served.url + "/webcast/rate_limits", headers={"X-Padding": "p" * 8000})
    assert_webcast_error(r.status_code, r.json(), 401)


@pytest.fixture(scope="module")
def backstopped(gateway_settings: Settings) -> Iterator[ServerThread]:
    """The gateway plus routes that fail the way unchecked input would make a route fail."""
    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    app = create_app(settings, Database(settings.db_url))

    async def too_deep(request: Request) -> Response:
        raise RecursionError("maximum recursion depth exceeded")

    async def unencodable(request: Request) -> Response:
        return Response("\ud800".encode())  # UnicodeEncodeError

    app.add_api_route("/tiktok/oauth/test-deep", too_deep, methods=["POST"])
    app.add_api_route("/dashboard/test-unencodable", unencodable)
    app.router.add_api_route("/webcast/test-deep", too_deep, route_class_override=WebcastRoute)
    server = ServerThread(app, port=port).start()
    yield server
    server.stop()


@spec("livegate", "security: bad input gets a 4xx in the standard shape, never a 500")
def test_a_recursion_or_unicode_error_escaping_a_route_is_a_400_in_its_dialect(
    backstopped: ServerThread,
) -> None:
    base = backstopped.url
    r = httpx.post(base + "/tiktok/oauth/test-deep", data={"a": "b"})
    assert_oauth_error(r.status_code, r.json(), 400)
    r = httpx.post(base + "/tiktok/oauth/test-deep", json={"a": "b"})
    body = r.json()
    assert r.status_code == 400 and body["code"] == 400 and body["error"]["error"], body
    assert_page(httpx.get(base + "/dashboard/test-unencodable"), 400)
    r = httpx.get(base + "/webcast/test-deep")
    assert_webcast_error(r.status_code, r.json(), 400)


@spec("livegate", "security: bad input gets a 4xx in the standard shape, never a 500")
def test_nothing_sent_above_was_logged_as_a_server_failure(
    log_buffer: io.StringIO, log_start: int
) -> None:
    log = log_buffer.getvalue()[log_start:]
    failure = re.search(r"unhandled \w+ on|webcast .* failed|Exception in ASGI application", log)
    assert failure is None, log[max(0, failure.start() - 500) : failure.end() + 1500]
