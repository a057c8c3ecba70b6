"""The token endpoints as an attacker tries them: other apps' tokens, replays that race,
repeated parameters, unreadable credentials, a proxy that hides the scheme.

Each race is run TRIALS times, because a race that is lost only now and then is still lost.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from tests.flows import authorize_url, query, sign_in, token_request
from tests.oauth_helpers import (
    REDIRECT,
    App,
    assert_oauth_error,
    exchange,
    get_code,
    introspect,
    new_user,
    refresh,
    register,
    tokens_for,
)
from tests.servers import ServerThread, free_port

spec = pytest.mark.spec

TRIALS = 100  # per race and per gateway layout; each trial needs a fresh sign-in
REFRESH_RACERS = 20  # concurrent requests carrying one refresh token
CODE_RACERS = 10  # concurrent exchanges of one code
SIGN_IN_WORKERS = 8  # sign-ins run side by side to prepare the trials
CODE_BATCH = 10  # codes live 60 s: sign in for this many trials at a time


def assert_envelope_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The Euler SDKs' shape, which every JSON request gets, its errors included."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == status and body["data"] is None, body
    assert body["error"]["error"] == error, body
    assert body["message"] == body["error"]["error_description"], body
    assert r.headers["cache-control"] == "no-store"
    return body


def active(gw: str, app: App, token: str) -> bool:
    return bool(introspect(gw, app, token)["active"])


def post(gw: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gw}/tiktok/oauth/{path}", timeout=30, **kwargs)


@pytest.fixture(scope="module")
def race_sim() -> Iterator[ServerThread]:
    """A simulator of the races' own that lets the QR status be polled at any pace.

    The races need hundreds of sign-ins, run side by side and polled often; on a loaded
    machine two of the gateway's polls can reach the shared simulator closer together than it
    allows, and TikTok's "too fast" answer holds that sign-in back for two minutes.
    """
    # Its accounts' uids start apart from the suite simulator's: both sign in to the suite's
    # database, where a uid names one account.
    state = SimState(min_poll_interval=0.0, _uids=itertools.count(7_410_000_000_000_000_001))
    server = ServerThread(create_simulator_app(state)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def race_gateways(
    gateway_settings: Settings, race_sim: ServerThread
) -> Iterator[list[ServerThread]]:
    """Two gateway processes on the suite's database, behind one public URL (a fleet)."""
    ports = [free_port(), free_port()]
    servers: list[ServerThread] = []
    databases: list[Database] = []
    for port in ports:
        settings = gateway_settings.model_copy(
            update={
                "port": port,
                "public_url": f"http://127.0.0.1:{ports[0]}",
                "tiktok_url": race_sim.url,
                "qr_poll_interval": 0.05,
            }
        )
        databases.append(Database(settings.db_url))
        servers.append(ServerThread(create_app(settings, databases[-1]), port=port).start())
    yield servers
    for server, database in zip(servers, databases, strict=True):
        server.stop()
        database.dispose()


@pytest.fixture(params=["one gateway", "two gateways"])
def gateways(request: pytest.FixtureRequest, race_gateways: list[ServerThread]) -> list[str]:
    """Where the racing requests go, in turn; sign-ins and checks use the first."""
    count = 1 if request.param == "one gateway" else 2
    return [server.url for server in race_gateways[:count]]


# -- issue 23 item 3: another app burns a user's refresh token ---------------------------------


@spec("RFC 6749", "6")
@spec("livegate", "security: another app's attempt never harms the owner's token family")
def test_another_app_presenting_my_refresh_token_changes_nothing(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    gw = gateway.url
    owner, thief, public_thief = (
        register(database),
        register(database),
        register(database, public=True),
    )
    t1 = tokens_for(gw, sim.url, owner)
    # The live token, with the other apps' own valid credentials, in each way they can send them.
    assert_oauth_error(refresh(gw, thief, t1["refresh_token"]), 400, "invalid_grant")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": t1["refresh_token"],
        "client_id": thief.client_id,
        "client_secret": str(thief.client_secret),
    }
    assert_oauth_error(token_request(gw, form), 400, "invalid_grant")
    assert_envelope_error(token_request(gw, form, as_json=True), 400, "invalid_grant")
    assert_oauth_error(refresh(gw, public_thief, t1["refresh_token"]), 400, "invalid_grant")
    assert active(gw, owner, t1["access_token"])
    r = refresh(gw, owner, t1["refresh_token"])
    assert r.status_code == 200, r.text
    t2 = r.json()
    # The already-rotated one: from the owner that would be a replay, from anyone else nothing.
    assert_oauth_error(refresh(gw, thief, t1["refresh_token"]), 400, "invalid_grant")
    assert_oauth_error(refresh(gw, public_thief, t1["refresh_token"]), 400, "invalid_grant")
    assert active(gw, owner, t2["access_token"])
    assert active(gw, owner, t2["refresh_token"])
    r = refresh(gw, owner, t2["refresh_token"])
    assert r.status_code == 200, r.text
    assert active(gw, owner, r.json()["access_token"])


@spec("RFC 6749", "4.1.3")
@spec("livegate", "security: another app's attempt never harms the owner's token family")
def test_another_app_presenting_my_code_changes_nothing(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    gw = gateway.url
    owner, thief = register(database), register(database)
    code, _ = get_code(gw, sim.url, owner)
    assert_oauth_error(exchange(gw, thief, code), 400, "invalid_grant")
    assert_oauth_error(exchange(gw, thief, code), 400, "invalid_grant")
    r = exchange(gw, owner, code)
    assert r.status_code == 200, r.text
    t = r.json()
    assert_oauth_error(exchange(gw, thief, code), 400, "invalid_grant")
    assert active(gw, owner, t["access_token"]) and active(gw, owner, t["refresh_token"])


@spec("RFC 6749", "6")
def test_a_refused_refresh_leaves_the_token_usable(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    """A refresh refused after the token was found (a wider scope) does not rotate it."""
    gw = gateway.url
    app = register(database)
    t = tokens_for(gw, sim.url, app)
    data = {
        "grant_type": "refresh_token",
        "refresh_token": t["refresh_token"],
        "scope": "webcast:chat",
    }
    assert_oauth_error(token_request(gw, data, auth=app.auth), 400, "invalid_scope")
    r = refresh(gw, app, t["refresh_token"])
    assert r.status_code == 200, r.text
    assert active(gw, app, r.json()["access_token"])


# -- issue 23 item 6: a replay that loses the race is a replay ---------------------------------


class Racer:
    """Fires a set of requests at once: each thread waits at a barrier, then sends."""

    def __init__(self, size: int) -> None:
        self.pool = ThreadPoolExecutor(size)
        self.local = threading.local()
        self.clients: list[httpx.Client] = []

    def client(self) -> httpx.Client:
        """One keep-alive client per thread, so that a trial's requests leave together."""
        if not hasattr(self.local, "client"):
            # uvicorn closes a connection idle for 5 s and httpx reuses one idle up to 5 s by
            # default: a trial started just then writes into a closing socket (ECONNRESET).
            # Sign-ins between batches leave the pool idle that long, so expire sooner.
            limits = httpx.Limits(keepalive_expiry=1)
            self.local.client = httpx.Client(timeout=60, limits=limits)
            self.clients.append(self.local.client)
        client: httpx.Client = self.local.client
        return client

    def fire(self, calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
        barrier = threading.Barrier(len(calls))

        def run(call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
            client = self.client()
            barrier.wait(timeout=30)
            return call(client)

        return [f.result() for f in [self.pool.submit(run, c) for c in calls]]

    def close(self) -> None:
        self.pool.shutdown()
        for client in self.clients:
            client.close()


def side_by_side(n: int, fn: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(SIGN_IN_WORKERS) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def not_invalid_grant(responses: list[httpx.Response]) -> list[str]:
    """The answers that are neither the winner's 200 nor a loser's 400 invalid_grant."""
    return [
        f"{r.status_code} {r.text[:120]}"
        for r in responses
        if r.status_code != 200
        and (r.status_code != 400 or r.json().get("error") != "invalid_grant")
    ]


@spec("RFC 9700", "4.14.2")
@spec("livegate", "security: a replayed refresh token revokes its family, even one losing a race")
def test_refresh_token_sent_by_many_at_once_revokes_the_family(
    gateways: list[str], race_sim: ServerThread, database: Database
) -> None:
    gw, sim = gateways[0], race_sim
    app = register(database)
    auth = app.auth
    assert auth is not None
    families = side_by_side(TRIALS, lambda: tokens_for(gw, sim.url, app))
    racer = Racer(REFRESH_RACERS)
    failures: list[str] = []
    try:
        for trial, t in enumerate(families):
            data = {"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}

            def call(i: int, data: dict[str, str] = data) -> Callable[[httpx.Client], Any]:
                url = f"{gateways[i % len(gateways)]}/tiktok/oauth/token"
                return lambda client: client.post(url, data=data, auth=auth)

            responses = racer.fire([call(i) for i in range(REFRESH_RACERS)])
            won = [r.json() for r in responses if r.status_code == 200]
            if len(won) != 1:
                failures.append(f"trial {trial}: {len(won)} requests got 200")
                continue
            if bad := not_invalid_grant(responses):
                failures.append(f"trial {trial}: losers answered {bad}")
            alive = [
                name
                for name, value in (
                    ("the winner's access token", won[0]["access_token"]),
                    ("the winner's refresh token", won[0]["refresh_token"]),
                    ("the first access token", t["access_token"]),
                )
                if active(gw, app, value)
            ]
            if alive:
                failures.append(f"trial {trial}: still active: {', '.join(alive)}")
    finally:
        racer.close()
    assert not failures, f"{len(failures)}/{TRIALS} trials failed: {failures[:10]}"


@spec("RFC 6749", "4.1.2")
@spec("RFC 6749", "10.5")
@spec("livegate", "security: a code exchanged twice revokes what it issued, even in a race")
def test_code_exchanged_many_times_at_once_revokes_what_it_issued(
    gateways: list[str], race_sim: ServerThread, database: Database
) -> None:
    gw, sim = gateways[0], race_sim
    app = register(database)
    auth = app.auth
    assert auth is not None
    racer = Racer(CODE_RACERS)
    failures: list[str] = []
    try:
        for start in range(0, TRIALS, CODE_BATCH):
            count = min(CODE_BATCH, TRIALS - start)
            codes = side_by_side(count, lambda: get_code(gw, sim.url, app)[0])
            for trial, code in enumerate(codes, start):
                data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}

                def call(i: int, data: dict[str, str] = data) -> Callable[[httpx.Client], Any]:
                    url = f"{gateways[i % len(gateways)]}/tiktok/oauth/token"
                    return lambda client: client.post(url, data=data, auth=auth)

                responses = racer.fire([call(i) for i in range(CODE_RACERS)])
                won = [r.json() for r in responses if r.status_code == 200]
                if len(won) > 1:
                    failures.append(f"trial {trial}: {len(won)} exchanges got 200")
                    continue
                if bad := not_invalid_grant(responses):
                    failures.append(f"trial {trial}: losers answered {bad}")
                alive = [
                    kind
                    for t in won
                    for kind in ("access_token", "refresh_token")
                    if active(gw, app, t[kind])
                ]
                if alive:
                    failures.append(f"trial {trial}: what the code issued is active: {alive}")
    finally:
        racer.close()
    assert not failures, f"{len(failures)}/{TRIALS} trials failed: {failures[:10]}"


# -- issue 23 item 7: parameters given more than once ------------------------------------------


def repeated_form(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


def json_with_repeats(pairs: list[tuple[str, str]]) -> bytes:
    """A JSON object with a key given twice, which no JSON library writes on purpose."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}").encode()


def assert_repeated(r: httpx.Response, name: str, as_json: bool) -> None:
    if as_json:
        body = assert_envelope_error(r, 400, "invalid_request")
        description = body["error"]["error_description"]
    else:
        description = assert_oauth_error(r, 400, "invalid_request")["error_description"]
    assert f"'{name}'" in description, description


@spec("RFC 6749", "3.2")
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_token_endpoint_refuses_repeated_parameters(
    gateway: ServerThread, sim: ServerThread, database: Database, as_json: bool
) -> None:
    gw = gateway.url
    app, other = register(database), register(database)
    code, _ = get_code(gw, sim.url, app)
    t = tokens_for(gw, sim.url, app)
    creds = [("client_id", app.client_id), ("client_secret", str(app.client_secret))]
    other_creds = [("client_id", other.client_id), ("client_secret", str(other.client_secret))]
    refresh_pairs = [("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"])]
    code_pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ]
    cases: list[tuple[str, list[tuple[str, str]]]] = [
        ("grant_type", [*refresh_pairs, ("grant_type", "refresh_token"), *creds]),
        ("refresh_token", [*refresh_pairs, ("refresh_token", "lg_rt_bogus"), *creds]),
        ("code", [*code_pairs, ("code", code), *creds]),
        ("client_id", [*refresh_pairs, *creds, *other_creds]),
        ("redirect_uri", [*code_pairs, ("redirect_uri", "https://evil.example/"), *creds]),
    ]
    for name, pairs in cases:
        body = json_with_repeats(pairs) if as_json else repeated_form(pairs)
        r = post(gw, "token", content=body, headers=JSON if as_json else FORM)
        assert_repeated(r, name, as_json)
    # Refused before anything happened: the code and the refresh token still work, once.
    r = exchange(gw, app, code)
    assert r.status_code == 200, r.text
    r = refresh(gw, app, t["refresh_token"])
    assert r.status_code == 200, r.text


@spec("RFC 6749", "3.2")
@spec("RFC 7009", "2.1")
@spec("RFC 7662", "2.1")
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_revoke_introspect_validate_refuse_repeated_parameters(
    gateway: ServerThread, sim: ServerThread, database: Database, as_json: bool
) -> None:
    gw = gateway.url
    app = register(database)
    t = tokens_for(gw, sim.url, app)
    creds = [("client_id", app.client_id), ("client_secret", str(app.client_secret))]
    cases = [
        ("revoke", "token", [("token", t["access_token"]), ("token", t["refresh_token"])]),
        ("introspect", "token", [("token", t["access_token"]), ("token", "lg_at_x")]),
        ("validate-refresh", "refresh_token", [("refresh_token", t["refresh_token"])] * 2),
        ("revoke", "client_secret", [("token", t["access_token"]), ("client_secret", "x")]),
    ]
    for path, name, pairs in cases:
        body = json_with_repeats(pairs + creds) if as_json else repeated_form(pairs + creds)
        r = post(gw, path, content=body, headers=JSON if as_json else FORM)
        assert_repeated(r, name, as_json)
    # Nothing was revoked by the refused requests.
    assert active(gw, app, t["access_token"]) and active(gw, app, t["refresh_token"])


@spec("RFC 6749", "3.1")
def test_authorize_refuses_repeated_parameters_without_redirecting(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database)
    base = authorize_url(gateway.url, app.client_id, REDIRECT, "webcast:fetch")
    for extra, name in (
        ("&redirect_uri=https%3A%2F%2Fevil.example%2F", "redirect_uri"),
        ("&state=other", "state"),
        ("&code_challenge_method=S256&code_challenge_method=S256", "code_challenge_method"),
        ("&prompt=login&prompt=none", "prompt"),
    ):
        r = httpx.get(base + extra)
        assert r.status_code == 400, (name, r.status_code, r.text[:200])
        assert "location" not in r.headers
        assert "invalid_request" in r.text and name in r.text, r.text[:500]
    assert httpx.get(base).status_code == 200  # the same request, each parameter once


# -- issue 23 item 4: input that gave 500s -------------------------------------------------------


@spec("RFC 6749", "5.2")
@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe:\xfd", b"lgc_x:\xc3\x28", b"\x80"],
    ids=["both", "secret", "lone-continuation-byte"],
)
def test_basic_credentials_that_are_not_utf8_are_invalid_client(
    gateway: ServerThread, value: bytes
) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(value).decode()}
    for path, form in (
        ("token", {"grant_type": "refresh_token", "refresh_token": "lg_rt_x"}),
        ("revoke", {"token": "lg_at_x"}),
        ("introspect", {"token": "lg_at_x"}),
        ("validate-refresh", {"refresh_token": "lg_rt_x"}),
    ):
        r = post(gateway.url, path, data=form, headers=headers)
        body = assert_oauth_error(r, 401, "invalid_client")
        assert "UTF-8" in body["error_description"], body
        assert r.headers["www-authenticate"].startswith("Basic ")
    # Not even base64 (characters outside it, or outside ASCII), in either dialect.
    for raw in (b"Basic \xe9\xe9", b"Basic ====", b"Basic a"):
        r = post(
            gateway.url,
            "token",
            data={"grant_type": "refresh_token"},
            headers={"Authorization": raw},
        )
        assert_oauth_error(r, 401, "invalid_client")
        r = post(
            gateway.url,
            "token",
            json={"grant_type": "refresh_token"},
            headers={"Authorization": raw},
        )
        assert_envelope_error(r, 401, "invalid_client")


@spec("livegate", "security: the issuer is LIVEGATE_PUBLIC_URL, whatever the Host header says")
def test_a_proxy_host_without_forwarded_proto_works_as_the_public_url(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    """A TLS-terminating proxy that forwards Host but not X-Forwarded-Proto: still OAuth."""
    gw, proxied = gateway.url, {"Host": "gateway.example"}
    app = register(database)
    url = authorize_url(gw, app.client_id, REDIRECT, "webcast:fetch user:info")
    r = httpx.get(url, headers=proxied)
    assert r.status_code == 200 and "csrf_token" in r.text, r.text[:300]
    redirect = sign_in(gw, sim.url, url, new_user())
    data = {
        "grant_type": "authorization_code",
        "code": query(redirect)["code"],
        "redirect_uri": REDIRECT,
    }
    r = post(gw, "token", data=data, auth=app.auth, headers=proxied)
    assert r.status_code == 200, r.text
    t = r.json()
    r = post(gw, "introspect", data={"token": t["access_token"]}, auth=app.auth, headers=proxied)
    assert r.status_code == 200 and r.json()["iss"] == gw, r.text
    r = post(
        gw,
        "validate-refresh",
        data={"refresh_token": t["refresh_token"]},
        auth=app.auth,
        headers=proxied,
    )
    assert r.status_code == 200 and r.json()["valid"] is True, r.text
    data = {"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}
    r = post(gw, "token", data=data, auth=app.auth, headers=proxied)
    assert r.status_code == 200, r.text
    r = post(
        gw, "revoke", data={"token": r.json()["refresh_token"]}, auth=app.auth, headers=proxied
    )
    assert r.status_code == 200, r.text


@spec("RFC 6749", "1.6")
def test_a_plain_http_public_url_is_refused_in_words(
    gateway_settings: Settings, database: Database
) -> None:
    """An issuer that is http on a public name: every OAuth call says so, none is a 500."""
    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": "http://gateway.example"}
    )
    server = ServerThread(create_app(settings, database), port=port).start()
    try:
        app = register(database)
        for path, form in (
            ("token", {"grant_type": "refresh_token", "refresh_token": "lg_rt_x"}),
            ("introspect", {"token": "lg_at_x"}),
            ("validate-refresh", {"refresh_token": "lg_rt_x"}),
        ):
            r = post(server.url, path, data=form, auth=app.auth)
            assert_oauth_error(r, 400, "insecure_transport")
        r = httpx.get(authorize_url(server.url, app.client_id, REDIRECT, "webcast:fetch"))
        assert r.status_code == 400 and "insecure_transport" in r.text
        assert "location" not in r.headers
    finally:
        server.stop()


@spec("RFC 6749", "5.2")
@pytest.mark.parametrize("value", [5, 1.5, True, None, {"a": "b"}, ["lg_rt_x"]], ids=repr)
def test_json_values_that_are_not_strings_are_a_bad_request(
    gateway: ServerThread, database: Database, value: object
) -> None:
    app = register(database)
    for path, body in (
        ("token", {"grant_type": "refresh_token", "refresh_token": value}),
        ("token", {"grant_type": value, "refresh_token": "lg_rt_x"}),
        ("revoke", {"token": value}),
        ("introspect", {"token": value}),
        ("validate-refresh", {"refresh_token": value}),
    ):
        sent = {**body, "client_id": app.client_id, "client_secret": app.client_secret}
        r = post(gateway.url, path, json=sent)
        description = assert_envelope_error(r, 400, "invalid_request")["message"]
        name = next(k for k, v in body.items() if v is value)
        assert f"'{name}'" in description and "string" in description, description


@spec("RFC 8259", "4")
def test_unreadable_json_bodies_get_the_envelope(gateway: ServerThread) -> None:
    for raw in (
        b'{"token": "a", "token": "b"}',
        b'{"token": "\\ud800"}',
        b"[" * 200 + b"]" * 200,
        b'{"token": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
        b"\xff\xfe",
        b"",
    ):
        for path in ("token", "revoke", "introspect", "validate-refresh"):
            r = post(gateway.url, path, content=raw, headers=JSON)
            assert_envelope_error(r, 400, "invalid_request")


# -- issue 23 item 10: validate-refresh authenticates the client --------------------------------


@spec("RFC 6749", "2.3.1")
@spec("livegate", "security: validate-refresh tells a token's user only to its client")
def test_validate_refresh_needs_the_clients_credentials(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    gw = gateway.url
    app, other = register(database), register(database)
    t = tokens_for(gw, sim.url, app)
    rt = t["refresh_token"]
    # Holding the token and the public client id is not enough.
    r = post(gw, "validate-refresh", data={"refresh_token": rt, "client_id": app.client_id})
    assert_oauth_error(r, 401, "invalid_client")
    r = post(gw, "validate-refresh", data={"refresh_token": rt})
    assert_oauth_error(r, 401, "invalid_client")
    r = post(
        gw, "validate-refresh", data={"refresh_token": rt}, auth=(app.client_id, "lg_cs_wrong")
    )
    body = assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic "), r.headers
    assert "tiktok_user_id" not in body
    wrong_post = {"refresh_token": rt, "client_id": app.client_id, "client_secret": "lg_cs_wrong"}
    assert_oauth_error(post(gw, "validate-refresh", data=wrong_post), 401, "invalid_client")
    r = post(gw, "validate-refresh", json=wrong_post)
    assert_envelope_error(r, 401, "invalid_client")
    # Another app, with its own good credentials, learns nothing.
    r = post(gw, "validate-refresh", data={"refresh_token": rt}, auth=other.auth)
    assert r.status_code == 200 and r.json() == {
        "valid": False,
        "scopes": [],
        "tiktok_user_id": None,
        "country_code": None,
    }
    # The token's own client gets the answer, with Basic, in the body, or in JSON.
    r = post(gw, "validate-refresh", data={"refresh_token": rt}, auth=app.auth)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["valid"] is True and answer["scopes"] == ["webcast:fetch", "user:info"]
    assert answer["tiktok_user_id"]
    good_post = {**wrong_post, "client_secret": str(app.client_secret)}
    assert (
        post(gw, "validate-refresh", data=good_post).json()["tiktok_user_id"]
        == answer["tiktok_user_id"]
    )
    envelope = post(gw, "validate-refresh", json=good_post).json()
    assert envelope["code"] == 200 and envelope["data"]["valid"] is True, envelope


@spec("RFC 6749", "2.3.1")
def test_validate_refresh_for_a_public_client_by_client_id(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    gw = gateway.url
    app, other = register(database, public=True), register(database, public=True)
    t = tokens_for(gw, sim.url, app)
    r = post(
        gw,
        "validate-refresh",
        data={"refresh_token": t["refresh_token"], "client_id": app.client_id},
    )
    assert r.status_code == 200 and r.json()["valid"] is True, r.text
    r = post(
        gw,
        "validate-refresh",
        data={"refresh_token": t["refresh_token"], "client_id": other.client_id},
    )
    assert r.status_code == 200 and r.json()["valid"] is False, r.text
    r = post(gw, "validate-refresh", data={"refresh_token": t["refresh_token"]})
    assert_oauth_error(r, 401, "invalid_client")
