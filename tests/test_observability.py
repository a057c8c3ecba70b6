"""What an operator sees of a gateway: /healthz, /readyz, /metrics, and the request id on every
answer and log line (observability.py, health.py, metrics.py), against real gateways on
loopback. `livegate serve` with several workers: tests/test_serve_workers.py."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from livegate import metrics
from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.migrate import upgrade
from livegate.logs import setup_logging
from livegate.tiktok.errors import UpstreamError, UpstreamTimeout, UserOffline
from livegate.vault import key_id
from tests.servers import ServerThread, free_port, wait_for
from tests.webcast_helpers import extra_gateway

spec = pytest.mark.spec
TOKEN = "metrics-" + secrets.token_urlsafe(24)
PG_URL = os.environ.get("LIVEGATE_TEST_DATABASE_URL")
REQUESTS = "livegate_http_requests_total"
HEX_ID = re.compile(r"[0-9a-f]{24}")


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def requests_count(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float],
    route: str,
    method: str,
    status: int,
) -> float:
    labels = frozenset({"route": route, "method": method, "status": str(status)}.items())
    return scraped.get((REQUESTS, labels), 0.0)


@pytest.fixture(scope="module")
def metered(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A gateway with /metrics behind TOKEN, trusting 127.0.0.1 as a proxy."""
    server = extra_gateway(
        gateway_settings, metrics_token=SecretStr(TOKEN), trusted_proxies=["127.0.0.1"]
    )
    yield server
    server.stop()


def scrape(server: ServerThread) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


# -- /healthz and /readyz ---------------------------------------------------------------------


def test_healthz_says_ok_while_the_process_serves(gateway: ServerThread) -> None:
    r = httpx.get(f"{gateway.url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


def test_readyz_is_ready_when_every_check_passes(
    gateway: ServerThread, gateway_settings: Settings
) -> None:
    r = httpx.get(f"{gateway.url}/readyz")
    assert r.status_code == 200, r.text
    redis = "ok" if gateway_settings.redis_url else "not configured"
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "current", "redis": redis},
    }


def test_readyz_is_unavailable_when_redis_does_not_answer(gateway_settings: Settings) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = extra_gateway(gateway_settings, redis_url=dead)
    try:
        r = httpx.get(f"{server.url}/readyz", timeout=10)
    finally:
        server.stop()
    assert r.status_code == 503
    assert r.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "current", "redis": "unreachable"},
    }
    assert dead not in r.text and "127.0.0.1" not in r.text


def test_readyz_is_unavailable_while_migrations_are_behind(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url, "0003_credential_changes")
    settings = gateway_settings.model_copy(update={"database_url": url})
    database = Database(url)
    server = ServerThread(create_app(settings, database)).start()
    try:
        behind = httpx.get(f"{server.url}/readyz", timeout=10)
        upgrade(url)
        current = httpx.get(f"{server.url}/readyz", timeout=10)
    finally:
        server.stop()
        database.dispose()
    assert behind.status_code == 503
    assert behind.json()["checks"] == {
        "database": "ok",
        "migrations": "behind",
        "redis": "not configured" if settings.redis_url is None else "ok",
    }
    assert current.status_code == 200, current.text


class TcpProxy:
    """A TCP forwarder on a fixed loopback port that the test can cut (the port closes and
    every connection through it drops, as when the database stops) and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                with self._lock:
                    self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def readiness(url: str) -> tuple[int, dict[str, object]]:
    r = httpx.get(f"{url}/readyz", timeout=10)
    return r.status_code, r.json()


@spec("livegate", "operations: /readyz follows the database without a restart")
@pytest.mark.skipif(
    not PG_URL, reason="a database outage needs PostgreSQL: set LIVEGATE_TEST_DATABASE_URL"
)
def test_readyz_goes_503_when_postgresql_stops_and_200_when_it_returns(
    gateway_settings: Settings,
) -> None:
    url = make_url(gateway_settings.db_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = gateway_settings.model_copy(update={"database_url": through})
    database = Database(through)
    server = ServerThread(create_app(settings, database)).start()
    try:
        assert readiness(server.url)[0] == 200
        proxy.cut()

        def unavailable() -> dict[str, object] | None:
            status, body = readiness(server.url)
            return body if status == 503 else None

        body = wait_for(
            unavailable,
            timeout=15,
            interval=0.2,
            what="readyz 503 while the database is away",
        )
        assert body == {
            "status": "unavailable",
            "checks": {
                "database": "unreachable",
                "migrations": "unknown",
                "redis": "ok" if settings.redis_url else "not configured",
            },
        }
        assert str(proxy.port) not in json.dumps(body)
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive all the same
        proxy.start()
        wait_for(
            lambda: readiness(server.url)[0] == 200,
            timeout=15,
            interval=0.2,
            what="readyz 200 once the database is back",
        )
    finally:
        server.stop()
        proxy.cut()
        database.dispose()


def test_health_endpoints_are_in_the_openapi_document(
    gateway: ServerThread, metered: ServerThread
) -> None:
    plain = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert set(plain["/healthz"]) == {"get"} and set(plain["/readyz"]) == {"get"}
    assert "503" in plain["/readyz"]["get"]["responses"]
    assert "/metrics" not in plain  # not served without LIVEGATE_METRICS_TOKEN
    assert httpx.get(f"{gateway.url}/metrics").status_code == 404
    with_token = httpx.get(f"{metered.url}/openapi.json").json()["paths"]
    assert set(with_token["/metrics"]) == {"get"}


# -- /metrics ---------------------------------------------------------------------------------


@spec("livegate", "security: metrics only for the holder of LIVEGATE_METRICS_TOKEN")
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_metrics_refuse_a_caller_without_the_token(
    metered: ServerThread, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    r = httpx.get(f"{metered.url}/metrics", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "livegate_" not in r.text


@spec("livegate", "security: metric labels never hold a raw path")
def test_metrics_count_requests_by_route_template_never_the_raw_path(
    metered: ServerThread,
) -> None:
    login_id, client_id, ticket, junk = (secrets.token_urlsafe(12) for _ in range(4))
    before = scrape(metered)
    calls = [
        ("GET", f"/tiktok/oauth/login/{login_id}/status"),
        ("GET", f"/tiktok/oauth/clients/{client_id}"),
        ("GET", f"/tiktok/oauth/clients/{client_id}"),
        ("GET", "/webcast/fetch?room_id=1"),  # the webcast fast path; no credential: 401
        ("GET", f"/webcast/ws/{ticket}/"),  # not a WebSocket upgrade
        ("GET", f"/no/such/{junk}"),
        ("GET", "/healthz"),
    ]
    answers = [httpx.request(m, metered.url + p) for m, p in calls]
    after = scrape(metered)
    text = httpx.get(f"{metered.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for secret in (login_id, client_id, ticket, junk):
        assert secret not in text

    def grew(route: str, status: int) -> float:
        return requests_count(after, route, "GET", status) - requests_count(
            before, route, "GET", status
        )

    statuses = [a.status_code for a in answers]
    assert grew("/tiktok/oauth/login/{login_id}/status", statuses[0]) == 1
    assert grew("/tiktok/oauth/clients/{client_id}", statuses[1]) == 2
    assert statuses[3] == 401 and grew("/webcast/fetch", 401) == 1
    # An HTTP GET matches no route on a WebSocket path: both 404s are counted as unmatched.
    assert statuses[4] == statuses[5] == 404 and grew("unmatched", 404) == 2
    assert grew("/healthz", 200) == 1
    durations = [
        k
        for k in after
        if k[0] == "livegate_http_request_duration_seconds_count"
        and dict(k[1]) == {"route": "/healthz", "method": "GET"}
    ]
    assert durations and after[durations[0]] >= 1


def test_metrics_hold_the_database_gauges(
    metered: ServerThread, gateway_settings: Settings
) -> None:
    scraped = scrape(metered)
    pending = {
        dict(labels)["status"] for name, labels in scraped if name == "livegate_pending_sign_ins"
    }
    assert pending == {"consent", "new", "scanned", "verify", "confirmed"}
    wrappings = {
        dict(labels)["key_id"]: dict(labels)["configured"]
        for name, labels in scraped
        if name == "livegate_vault_wrappings"
    }
    assert wrappings[key_id(gateway_settings.server_keys[0])] == "true"


# -- the request id ---------------------------------------------------------------------------


def test_every_answer_carries_a_new_request_id(gateway: ServerThread) -> None:
    ids = [
        httpx.get(gateway.url + path).headers.get("x-request-id")
        for path in ("/healthz", "/healthz", "/no-such-page", "/webcast/fetch")
    ]
    assert all(i and HEX_ID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


@spec("livegate", "security: forwarded headers are believed only from configured proxies")
def test_an_incoming_request_id_is_kept_only_from_a_trusted_proxy(
    gateway: ServerThread, metered: ServerThread
) -> None:
    offered = "lb-" + secrets.token_hex(8)
    untrusted = httpx.get(f"{gateway.url}/healthz", headers={"X-Request-Id": offered})
    assert untrusted.headers["x-request-id"] != offered
    trusted = httpx.get(f"{metered.url}/healthz", headers={"X-Request-Id": offered})
    assert trusted.headers["x-request-id"] == offered
    for bad in ("has space", "x" * 129, "semi;colon", ""):
        r = httpx.get(f"{metered.url}/healthz", headers={"X-Request-Id": bad})
        assert HEX_ID.fullmatch(r.headers["x-request-id"]), bad


def test_json_log_lines_carry_the_request_id(gateway: ServerThread) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buf = io.StringIO()
    try:
        setup_logging("info", stream=buf, json_lines=True)
        r = httpx.get(f"{gateway.url}/tiktok/oauth/clients/{secrets.token_hex(4)}")
        request_id = r.headers["x-request-id"]
        wait_for(lambda: request_id in buf.getvalue(), timeout=5, what="the access log line")
    finally:
        root.handlers, root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert any(line["logger"] == "uvicorn.access" for line in mine), mine
    assert all(line["process"] == os.getpid() for line in mine)
    others = [line for line in lines if "request_id" in line and line not in mine]
    assert all(line["request_id"] != request_id for line in others)


# -- the helpers the OAuth and webcast code count with ---------------------------------------


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@spec("livegate", "security: metric labels never hold a raw path")
def test_metric_helpers_count_with_bounded_labels() -> None:
    before = {
        "issued": counted("livegate_grants_issued_total", grant_type="refresh_token"),
        "refused": counted(
            "livegate_grants_refused_total", grant_type="authorization_code", reason="invalid_grant"
        ),
        "odd": counted("livegate_grants_refused_total", grant_type="other", reason="other"),
        "ok": counted("livegate_upstream_calls_total", route="im/fetch", outcome="ok"),
        "timeout": counted("livegate_upstream_calls_total", route="im/fetch", outcome="timeout"),
        "refusal": counted("livegate_upstream_calls_total", route="im/fetch", outcome="refused"),
        "error": counted("livegate_upstream_calls_total", route="other", outcome="error"),
        "limited": counted("livegate_rate_limited_total", limit="connect:token"),
        "relays": counted("livegate_open_relays"),
    }
    metrics.token_answered("refresh_token", 200, {"access_token": "lg_at_x"})
    metrics.token_answered("authorization_code", 400, {"error": "invalid_grant"})
    metrics.token_answered("a grant; DROP", 400, {"error": "not a code"})
    with metrics.counting_upstream("im/fetch"):
        pass
    for exc in (UpstreamTimeout("slow"), UserOffline("offline")):
        with pytest.raises(type(exc)), metrics.counting_upstream("im/fetch"):
            raise exc
    with pytest.raises(UpstreamError), metrics.counting_upstream("https://x.test/?a=b c"):
        raise UpstreamError("no answer")
    metrics.rate_limited("connect:token")
    metrics.relay_opened()
    metrics.relay_opened()
    metrics.relay_closed()
    after = {
        "issued": counted("livegate_grants_issued_total", grant_type="refresh_token"),
        "refused": counted(
            "livegate_grants_refused_total", grant_type="authorization_code", reason="invalid_grant"
        ),
        "odd": counted("livegate_grants_refused_total", grant_type="other", reason="other"),
        "ok": counted("livegate_upstream_calls_total", route="im/fetch", outcome="ok"),
        "timeout": counted("livegate_upstream_calls_total", route="im/fetch", outcome="timeout"),
        "refusal": counted("livegate_upstream_calls_total", route="im/fetch", outcome="refused"),
        "error": counted("livegate_upstream_calls_total", route="other", outcome="error"),
        "limited": counted("livegate_rate_limited_total", limit="connect:token"),
        "relays": counted("livegate_open_relays"),
    }
    assert {k: after[k] - before[k] for k in before} == {
        "issued": 1,
        "refused": 1,
        "odd": 1,
        "ok": 1,
        "timeout": 1,
        "refusal": 1,
        "error": 1,
        "limited": 1,
        "relays": 1,
    }
    metrics.relay_closed()
