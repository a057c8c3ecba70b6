"""Limits on guessing and sign-ups, per client address, and whose address that is.

Each test calls from addresses of its own: through a gateway that trusts 127.0.0.1 as its
reverse proxy, `X-Forwarded-For` names them (random ones, so that runs sharing a Redis do
not share counters). Limits are small, set through Settings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from livegate.config import Settings
from livegate.dashboard.service import create_developer
from livegate.db.engine import Database
from tests.oauth_helpers import App, register
from tests.servers import ServerThread, free_port, wait_for
from tests.webcast_helpers import api_key_for, extra_gateway

spec = pytest.mark.spec
FORWARDED = ("livegate", "security: forwarded headers are trusted only from configured proxies")
GUESSING = ("RFC 6749", "10.10")  # the server MUST prevent guessing of client credentials

PASSWORD = "correct horse battery"
LIMITS = {
    "rate_limit_login": "3/minute",  # per address and account (email, client_id)
    "rate_limit_failures": "5/minute",  # per address
    "rate_limit_signup": "3/minute",  # per address
}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def new_address() -> str:
    """A random address in 198.18.0.0/15 (RFC 2544's benchmarking range)."""
    return str(ipaddress.IPv4Address(0xC6120000 + secrets.randbelow(1 << 17)))


def new_email() -> str:
    return f"rl-{secrets.token_hex(4)}@example.com"


@pytest.fixture(scope="module")
def trusting(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A gateway behind a reverse proxy on 127.0.0.1."""
    server = extra_gateway(gateway_settings, trusted_proxies=["127.0.0.1"], **LIMITS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def untrusting(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A gateway configured like the default: no proxy is trusted."""
    server = extra_gateway(gateway_settings, trusted_proxies=[], **LIMITS)
    yield server
    server.stop()


def dashboard_post(
    url: str, page: str, data: dict[str, str], forwarded_for: str | None
) -> httpx.Response:
    """One browser: the form (for its CSRF cookie and token), then its POST."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=url, headers=headers, timeout=15) as browser:
        form = browser.get(page)
        token = CSRF_RE.search(form.text)
        assert token, form.text[:300]
        return browser.post(page, data={**data, "csrf_token": token.group(1)})


def sign_in(url: str, email: str, password: str, address: str | None) -> httpx.Response:
    data = {"email": email, "password": password}
    return dashboard_post(url, "/dashboard/login", data, address)


def sign_up(url: str, address: str | None) -> httpx.Response:
    data = {"email": new_email(), "password": PASSWORD}
    return dashboard_post(url, "/dashboard/signup", data, address)


def developer(database: Database) -> str:
    email = new_email()
    with database.session() as session:
        create_developer(session, email, PASSWORD)
    return email


# -- dashboard sign-in ------------------------------------------------------------------------


@spec("livegate", "security: failed dashboard sign-ins are limited per client address")
def test_bad_passwords_for_many_emails_from_one_address_get_429(
    trusting: ServerThread, database: Database
) -> None:
    address = new_address()
    emails = [developer(database) for _ in range(3)] + [new_email() for _ in range(27)]
    codes = [sign_in(trusting.url, e, "wrong password!", address).status_code for e in emails]
    # 5 failures per address, whatever the email: refused long before the 30th.
    assert codes == [401] * 5 + [429] * 25
    r = sign_in(trusting.url, new_email(), "wrong password!", address)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many attempts" in r.text


@spec("livegate", "security: failed dashboard sign-ins are limited per client address")
def test_the_owner_signs_in_from_another_address_after_an_attack_on_their_email(
    trusting: ServerThread, database: Database
) -> None:
    email = developer(database)
    attacker = new_address()
    codes = [sign_in(trusting.url, email, f"guess {i}!!", attacker).status_code for i in range(6)]
    assert codes == [401] * 3 + [429] * 3  # 3 failures per address and email
    # The attacker's address stays refused, even with the right password...
    assert sign_in(trusting.url, email, PASSWORD, attacker).status_code == 429
    # ...but nothing counts per email alone: the owner, elsewhere, is not locked out, and
    # successful sign-ins never use up a limit.
    owner = new_address()
    for _ in range(6):
        r = sign_in(trusting.url, email, PASSWORD, owner)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/clients"


# -- forwarded headers and sign-up ------------------------------------------------------------


@spec(*FORWARDED)
def test_rotating_forwarded_for_from_an_untrusted_peer_does_not_escape_the_signup_limit(
    untrusting: ServerThread,
) -> None:
    codes = [sign_up(untrusting.url, new_address()).status_code for _ in range(6)]
    # One address (the peer's) and 3 sign-ups a minute for it. A run sharing the Redis may
    # have used some of them already, never added any.
    assert set(codes) <= {303, 429}
    assert codes.count(303) <= 3 and codes.count(429) >= 3
    assert codes == sorted(codes)  # once refused, refused


@spec(*FORWARDED)
def test_forwarded_for_from_a_trusted_proxy_is_the_client_address(trusting: ServerThread) -> None:
    # Each forwarded address has its own sign-up limit...
    assert [sign_up(trusting.url, new_address()).status_code for _ in range(6)] == [303] * 6
    # ...and is held to it.
    one = new_address()
    codes = [sign_up(trusting.url, one).status_code for _ in range(5)]
    assert codes == [303] * 3 + [429] * 2


@spec(*FORWARDED)
def test_livegate_serve_believes_no_forwarded_header_by_default(tmp_path: Path) -> None:
    # uvicorn on its own believes X-Forwarded-For from 127.0.0.1.
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIVEGATE_")},
        "LIVEGATE_DATA_DIR": str(tmp_path),
        "LIVEGATE_RATE_LIMIT_SIGNUP": "2/minute",
        "LIVEGATE_PURGE_INTERVAL": "0",
        "LIVEGATE_WORKERS": "1",  # in-memory limits count per worker
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "livegate.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return httpx.get(
                    f"{url}/.well-known/oauth-authorization-server", timeout=1
                ).is_success
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30, interval=0.2, what="livegate serve")
        codes = [sign_up(url, new_address()).status_code for _ in range(4)]
        assert codes == [303, 303, 429, 429]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- client authentication ----------------------------------------------------------------------


def token_request(url: str, app: App, secret: str, address: str) -> httpx.Response:
    return httpx.post(
        f"{url}/tiktok/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "lg_rt_" + secrets.token_hex(8)},
        auth=(app.client_id, secret),
        headers={"X-Forwarded-For": address},
        timeout=10,
    )


@spec(*GUESSING)
def test_repeated_wrong_client_secrets_get_429(trusting: ServerThread, database: Database) -> None:
    app = register(database)
    assert app.client_secret is not None
    address = new_address()
    codes = [token_request(trusting.url, app, f"lg_cs_wrong{i}", address) for i in range(5)]
    assert [r.status_code for r in codes[:3]] == [401] * 3
    assert all(r.json()["error"] == "invalid_client" for r in codes[:3])
    # 3 failures per address and client_id: then refused before the secret is looked at.
    for r in codes[3:]:
        assert r.status_code == 429
        assert r.json()["error"] == "invalid_client"
        assert "Too many failed client authentications" in r.json()["error_description"]
        assert int(r.headers["retry-after"]) > 0
        assert r.headers["cache-control"] == "no-store"
    r = token_request(trusting.url, app, app.client_secret, address)
    assert r.status_code == 429  # the right secret too, from there
    # The revocation and introspection endpoints share the count.
    for path in ("revoke", "introspect"):
        r = httpx.post(
            f"{trusting.url}/tiktok/oauth/{path}",
            data={"token": "lg_at_x"},
            auth=(app.client_id, app.client_secret),
            headers={"X-Forwarded-For": address},
        )
        assert r.status_code == 429 and r.json()["error"] == "invalid_client"
    # The Euler SDKs' JSON dialect gets its envelope.
    r = httpx.post(
        f"{trusting.url}/tiktok/oauth/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": "lg_rt_x",
            "client_id": app.client_id,
        },
        headers={"X-Forwarded-For": address},
    )
    assert r.status_code == 429
    body = r.json()
    assert body["code"] == 429 and body["error"]["error"] == "invalid_client" and body["message"]
    # The app itself, from its own address, is not held back: its secret is checked and the
    # call goes on to the grant (an unknown refresh token).
    ok = token_request(trusting.url, app, app.client_secret, new_address())
    assert ok.status_code == 400 and ok.json()["error"] == "invalid_grant"


@spec(*GUESSING)
def test_wrong_client_credentials_for_many_clients_from_one_address_get_429(
    trusting: ServerThread, database: Database
) -> None:
    address = new_address()
    apps = [register(database) for _ in range(7)]
    codes = [token_request(trusting.url, a, "lg_cs_wrong", address).status_code for a in apps]
    assert codes == [401] * 5 + [429] * 2  # 5 failures per address, whatever the client


# -- API keys -----------------------------------------------------------------------------------


@spec("livegate", "security: failed API keys are limited per client address")
def test_repeated_bad_api_keys_get_429(trusting: ServerThread, database: Database) -> None:
    address = new_address()
    url = f"{trusting.url}/webcast/rate_limits"

    def call(key: str, where: str) -> httpx.Response:
        return httpx.get(url, headers={"X-Api-Key": key, "X-Forwarded-For": where}, timeout=10)

    bad = ["lg_ak_" + secrets.token_hex(16) for _ in range(4)] + ["not-a-key"] * 3
    responses = [call(key, address) for key in bad]
    assert [r.status_code for r in responses] == [401] * 5 + [429] * 2
    assert all(r.json()["error"] == "invalid_api_key" for r in responses[:5])
    refused = responses[-1]
    body = refused.json()
    assert body["code"] == 429 and "API keys" in body["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-remaining"] == "0"
    # A good key from another address: every call answered, however many.
    key = api_key_for(database, None)
    elsewhere = new_address()
    assert [call(key, elsewhere).status_code for _ in range(8)] == [200] * 8
