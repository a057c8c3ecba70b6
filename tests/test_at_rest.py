"""A dump of the database, read as an attacker would, after every kind of sign-in.

The security model: nothing secret is ever written in the clear, not even for a moment. The
dump is the raw bytes of the SQLite file with its -wal and -shm (freed pages and old WAL frames
included), or `pg_dump` of the test schema. It is searched for every cookie value that crossed
the wire between the gateway and TikTok (the simulator, wrapped in a recorder), every QR token
and session id the simulator issued, every code and token the app received, the client secret,
the server key, and each browser's binding cookie and CSRF token.

These tests run their own simulator, gateway and database: the dump then holds exactly the
flows below, and the recorder sees every cookie the simulator hands out or receives.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import delete, make_url, select, text

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import AuditEvent, PendingLogin
from livegate.login import sealed
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from livegate.vault import Vault, VaultError
from tests.conftest import isolated_database
from tests.flows import (
    Login,
    authorize_url,
    open_consent,
    phone,
    pkce_pair,
    query,
    sim_account,
    start_qr,
    wait_status,
)
from tests.oauth_helpers import App, exchange, new_user, refresh, register
from tests.servers import ServerThread, free_port, wait_for

spec = pytest.mark.spec
AT_REST = spec("livegate", "security: nothing secret is written in the clear")

# Cookie values that name a data centre or a country, or say how the user signed in: the same
# for every user, and stored in the clear as account facts (tiktok_accounts.region).
PUBLIC_COOKIES = {
    "store-idc",
    "tt-target-idc",
    "store-country-code",
    "store-country-code-src",
    "last_login_method",
}
BYTEA = re.compile(rb"\\\\x((?:[0-9a-f]{2})+)")
LOGIN_COOKIE = "lg_login"
ACCOUNT_COOKIE = "lg_acct"


# -- the simulator, recorded -----------------------------------------------------------------


class WireRecorder:
    """ASGI wrapper around the simulator: every cookie value that crosses the wire, both ways."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.cookies: dict[str, set[str]] = {}

    def _add(self, name: str, value: str) -> None:
        name, value = name.strip(), value.strip()
        if name and value:
            with self.lock:
                self.cookies.setdefault(name, set()).add(value)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"cookie":
                for pair in value.decode("latin-1").split(";"):
                    self._add(*pair.partition("=")[::2])

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"set-cookie":
                        first = value.decode("latin-1").split(";", 1)[0]
                        self._add(*first.partition("=")[::2])
                    elif name.lower() == b"x-ms-token":
                        self._add("msToken", value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, recording_send)

    def secrets(self) -> dict[str, str]:
        with self.lock:
            return {
                f"cookie {name} #{i}": value
                for name, values in self.cookies.items()
                if name not in PUBLIC_COOKIES
                for i, value in enumerate(sorted(values))
                if len(value) >= 8
            }


# -- the dump ------------------------------------------------------------------------------


@dataclass
class Dumper:
    url: str

    def dump(self) -> bytes:
        if self.url.startswith("sqlite"):
            path = make_url(self.url).database
            assert path
            files = [Path(path + suffix) for suffix in ("", "-wal", "-shm")]
            return b"".join(f.read_bytes() for f in files if f.exists())
        url = make_url(self.url)
        options = str(url.query.get("options", ""))
        schema = options.split("search_path=", 1)[1]
        libpq = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        pg_dump = shutil.which("pg_dump")
        assert pg_dump, "pg_dump is not installed"
        done = subprocess.run(
            [pg_dump, "--no-owner", f"--schema={schema}", libpq],
            capture_output=True,
            check=True,
            timeout=60,
        )
        # bytea columns come out as hex; an attacker reads them decoded, and so does this.
        blobs = [bytes.fromhex(h.decode()) for h in BYTEA.findall(done.stdout)]
        return done.stdout + b"\n".join(blobs)


def leaked(dump: bytes, secrets_: dict[str, str], public: set[str]) -> list[str]:
    """The labels of the secrets found in `dump`, whole or in part.

    A long value split across an SQLite overflow page still leaves its first or its last 16
    characters in one piece, so both are searched too, unless that piece is part of a public
    value (`multi_sids` starts with the user id, which is stored as an account fact).
    """
    found = []
    for label, value in secrets_.items():
        probes = {value}
        if len(value) >= 32:
            probes |= {p for p in (value[:16], value[-16:]) if not any(p in v for v in public)}
        if any(p.encode() in dump for p in probes):
            found.append(label)
    return found


# -- the servers -----------------------------------------------------------------------------


@dataclass
class World:
    gw: str
    sim: str
    sim_state: SimState
    wire: WireRecorder
    database: Database
    settings: Settings
    dumper: Dumper
    # Everything the tests saw issued: codes, tokens, bindings, CSRF tokens, secrets.
    issued: dict[str, str] = field(default_factory=dict)
    # Not secret (they are in the page URLs): proof that the dump holds the pending sign-ins.
    login_ids: list[str] = field(default_factory=list)

    def all_secrets(self) -> dict[str, str]:
        found = dict(self.issued)
        found.update(self.wire.secrets())
        with self.sim_state.lock:
            found.update({f"sessionid {i}": s for i, s in enumerate(self.sim_state.sessions)})
            found.update({f"qr token {i}": t for i, t in enumerate(self.sim_state.qr_logins)})
        keys = self.settings.server_keys
        found.update({f"server key {i}": k.decode() for i, k in enumerate(keys)})
        return found

    def assert_dump_clean(self) -> None:
        everything = self.all_secrets()
        assert any(k.startswith("cookie sessionid") for k in everything), "recorder saw no session"
        with self.sim_state.lock:
            accounts = list(self.sim_state.accounts.values())
        public = {v for a in accounts for v in (a.uid, a.sec_uid, a.unique_id)}
        dump = self.dumper.dump()
        assert self.login_ids and all(i.encode() in dump for i in self.login_ids)
        assert leaked(dump, everything, public) == []

    def note(self, label: str, value: str) -> None:
        self.issued[f"{label} #{len(self.issued)}"] = value

    def note_login(self, login: Login) -> None:
        self.login_ids.append(login.login_id)
        binding = login.browser.cookies.get(LOGIN_COOKIE)
        assert binding, "the browser holds no binding cookie"
        self.note("binding", binding)
        self.note("login csrf", login.csrf)

    def pending(self, login_id: str) -> PendingLogin:
        with self.database.session() as s:
            row = s.get(PendingLogin, login_id)
            assert row is not None
            return row


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import os

    state = SimState(min_poll_interval=0.3)
    wire = WireRecorder(create_simulator_app(state))
    sim = ServerThread(wire).start()
    data_dir = tmp_path_factory.mktemp("at_rest")
    base = os.environ.get("LIVEGATE_TEST_DATABASE_URL") or f"sqlite:///{data_dir / 'rest.db'}"
    url, drop = isolated_database(base)
    port = free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        database_url=url,
        redis_url=os.environ.get("LIVEGATE_TEST_REDIS_URL") or None,
        tiktok_url=sim.url,
        qr_poll_interval=0.4,
        purge_interval=0,
        secret_keys=[secrets.token_urlsafe(32), secrets.token_urlsafe(32)],
    )
    database = Database(settings.db_url)
    gateway = ServerThread(create_app(settings, database), port=port).start()
    try:
        yield World(gateway.url, sim.url, state, wire, database, settings, Dumper(url))
    finally:
        gateway.stop()
        sim.stop()
        database.dispose()
        drop()


# -- flows -----------------------------------------------------------------------------------


def authorize(world: World, app: App, **extra: str) -> str:
    scope = "webcast:fetch user:info"
    return authorize_url(world.gw, app.client_id, app.redirect_uri, scope, **extra)


def confirm_on_phone(world: World, login: Login, uid: str) -> None:
    assert phone(world.sim, login.qr_token, "scan", uid).status_code == 200
    wait_status(login, {"scanned"})
    assert phone(world.sim, login.qr_token, "confirm", uid).status_code == 200


def signed_in_code(world: World, app: App, **extra: str) -> tuple[Login, str]:
    """A complete QR sign-in; the login and the authorization code the app got."""
    account = sim_account(world.sim, new_user())
    login = start_qr(world.gw, authorize(world, app, **extra))
    world.note_login(login)
    confirm_on_phone(world, login, account["uid"])
    redirect = wait_status(login, {"done"})["redirect"]
    assert isinstance(redirect, str) and redirect.startswith(app.redirect_uri)
    code = query(redirect)["code"]
    assert code.startswith("lg_ac_")
    world.note("code", code)
    return login, code


def note_tokens(world: World, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    world.note("access token", body["access_token"])
    world.note("refresh token", body["refresh_token"])
    return body


def registered(world: World, public: bool = False) -> App:
    app = register(world.database, public=public)
    if app.client_secret:
        world.note("client secret", app.client_secret)
    return app


# -- tests -----------------------------------------------------------------------------------


@AT_REST
def test_dump_after_failed_profile_read_holds_no_cookie_code_or_qr_token(world: World) -> None:
    """TikTok confirmed, the profile read keeps failing: the jar waits sealed, never in clear."""
    app = registered(world)
    account = sim_account(world.sim, new_user())
    fault = {"route": "passport/web/account/info", "status": 500}
    assert httpx.post(f"{world.sim}/_sim/faults", json=fault).status_code in (200, 201)
    try:
        login = start_qr(world.gw, authorize(world, app))
        world.note_login(login)
        confirm_on_phone(world, login, account["uid"])

        def stuck() -> dict[str, object] | None:
            body = wait_status(login, {"confirmed", "done", "error"})
            return body if body.get("message") else None

        body = wait_for(stuck, timeout=15, interval=0.1, what="a failed profile read")
        assert body["status"] == "confirmed"
        row = world.pending(login.login_id)
        assert row.status == "confirmed" and row.sealed
        world.assert_dump_clean()
    finally:
        httpx.delete(f"{world.sim}/_sim/faults")

    # The same sign-in completes once TikTok answers: a code the app has not exchanged yet...
    redirect = wait_status(login, {"done"})["redirect"]
    assert isinstance(redirect, str)
    code = query(redirect)["code"]
    world.note("code", code)
    assert world.pending(login.login_id).sealed is None
    world.assert_dump_clean()
    # ...and the tokens it became.
    note_tokens(world, exchange(world.gw, app, code))
    world.assert_dump_clean()


@AT_REST
def test_sealed_sign_in_opens_only_with_the_browsers_binding(world: World) -> None:
    """The server key and everything in the row open nothing; the binding cookie does."""
    app = registered(world)
    account = sim_account(world.sim, new_user())
    fault = {"route": "passport/web/account/info", "status": 500}
    assert httpx.post(f"{world.sim}/_sim/faults", json=fault).status_code in (200, 201)
    try:
        login = start_qr(world.gw, authorize(world, app))
        world.note_login(login)
        confirm_on_phone(world, login, account["uid"])
        wait_for(
            lambda: wait_status(login, {"confirmed"}).get("message"),
            timeout=15,
            what="a failed profile read",
        )
        row = world.pending(login.login_id)
    finally:
        httpx.delete(f"{world.sim}/_sim/faults")
    vault = Vault(world.settings.server_keys)
    assert row.sealed
    # An attacker holding the dump and the server key tries what the row offers.
    for guess in (row.binding_digest, row.id, login.csrf):
        with pytest.raises(VaultError):
            sealed.open_sealed(vault, guess, row.id, row.sealed)
    # The attacker cannot drive the sign-in with the stored digest either.
    stranger = httpx.Client(base_url=world.gw, cookies={LOGIN_COOKIE: row.binding_digest})
    assert stranger.get(f"/tiktok/oauth/login/{row.id}/status").status_code == 404
    # The browser's binding opens it: the confirmed jar was kept, sealed.
    binding = login.browser.cookies.get(LOGIN_COOKIE)
    assert binding
    held = sealed.open_sealed(vault, binding, row.id, row.sealed)
    with world.sim_state.lock:
        sessions = {s for s, sess in world.sim_state.sessions.items() if sess.uid == account["uid"]}
    assert held.jar and held.jar["sessionid"] in sessions
    # After a key rotation (a newer key in front) it still opens; without its key, never.
    rotated = Vault([secrets.token_bytes(32), *world.settings.server_keys])
    assert sealed.open_sealed(rotated, binding, row.id, row.sealed).jar == held.jar
    with pytest.raises(VaultError):
        sealed.open_sealed(Vault(world.settings.server_keys[1:]), binding, row.id, row.sealed)
    wait_status(login, {"done"})


@AT_REST
def test_dump_after_sign_ins_and_token_exchanges_holds_no_secret(world: World) -> None:
    confidential = registered(world)
    _, code = signed_in_code(world, confidential)
    # While the code is not exchanged yet: it is nowhere in the database.
    world.assert_dump_clean()
    first = note_tokens(world, exchange(world.gw, confidential, code))
    note_tokens(world, refresh(world.gw, confidential, first["refresh_token"]))

    public = registered(world, public=True)
    verifier, challenge = pkce_pair()
    world.note("pkce verifier", verifier)
    _, code = signed_in_code(world, public, code_challenge=challenge, code_challenge_method="S256")
    note_tokens(world, exchange(world.gw, public, code, verifier))
    world.assert_dump_clean()


@AT_REST
def test_dump_after_refused_failed_and_cancelled_sign_ins_holds_no_secret(world: World) -> None:
    app = registered(world)
    # Failed: TikTok confirms, then says the new session is not signed in.
    account = sim_account(world.sim, new_user())
    fault = {"route": "passport/web/account/info", "status": 401, "count": 1}
    assert httpx.post(f"{world.sim}/_sim/faults", json=fault).status_code in (200, 201)
    try:
        login = start_qr(world.gw, authorize(world, app))
        world.note_login(login)
        confirm_on_phone(world, login, account["uid"])
        assert wait_status(login, {"error", "done"})["status"] == "error"
    finally:
        httpx.delete(f"{world.sim}/_sim/faults")
    assert world.pending(login.login_id).sealed is None
    # Refused on the phone.
    account = sim_account(world.sim, new_user())
    login = start_qr(world.gw, authorize(world, app))
    world.note_login(login)
    assert phone(world.sim, login.qr_token, "scan", account["uid"]).status_code == 200
    assert phone(world.sim, login.qr_token, "refuse").status_code == 200
    redirect = wait_status(login, {"refused"})["redirect"]
    assert isinstance(redirect, str) and query(redirect)["error"] == "access_denied"
    assert world.pending(login.login_id).sealed is None
    # Cancelled on the consent page, before any QR code.
    browser, login_id, csrf = open_consent(world.gw, authorize(world, app))
    world.note_login(Login(login_id, csrf, "", browser))
    r = browser.post(f"/tiktok/oauth/login/{login_id}/cancel", data={"csrf_token": csrf})
    assert r.status_code == 303 and query(r.headers["location"])["error"] == "access_denied"
    # Cancelled on the QR page, after the warm-up and a QR code.
    login = start_qr(world.gw, authorize(world, app))
    world.note_login(login)
    r = login.browser.post(
        f"/tiktok/oauth/login/{login.login_id}/cancel", data={"csrf_token": login.csrf}
    )
    assert r.status_code == 303 and query(r.headers["location"])["error"] == "access_denied"
    assert world.pending(login.login_id).status == "refused"
    world.assert_dump_clean()


@AT_REST
def test_dump_after_account_sign_in_holds_no_secret(world: World) -> None:
    """The connected-apps page signs in with the same QR flow; it leaves nothing either."""
    account = sim_account(world.sim, new_user())
    browser = httpx.Client(base_url=world.gw, follow_redirects=False, timeout=15)
    page = browser.get("/account")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    r = browser.post("/account/login", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 303, r.text[:300]
    qr_path = r.headers["location"]
    qr = browser.get(qr_path)
    link = re.search(r'id="qr-link" href="([^"]+)"', qr.text)
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', qr.text)
    assert qr.status_code == 200 and link and login_csrf
    token = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)["token"][0]
    login = Login(qr_path.rsplit("/", 1)[1], login_csrf.group(1), token, browser)
    world.note_login(login)
    world.note("account pending cookie", browser.cookies.get(ACCOUNT_COOKIE) or "")
    confirm_on_phone(world, login, account["uid"])
    assert wait_status(login, {"done"})["redirect"] == "/account"
    apps = browser.get("/account")
    assert apps.status_code == 200 and "/account/logout" in apps.text
    world.note("account session cookie", browser.cookies.get(ACCOUNT_COOKIE) or "")
    world.assert_dump_clean()


@AT_REST
def test_sqlite_zeroes_what_it_frees(world: World) -> None:
    """secure_delete: a deleted value is gone from the file, not left in a freed page."""
    if not world.settings.db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL has no file the gateway controls")
    marker = "lg_marker_" + secrets.token_hex(24)
    with world.database.session() as s:
        s.add(AuditEvent(kind="test.marker", detail={"marker": marker * 40}))
    with world.database.session() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.kind == "test.marker"))
        assert s.scalar(select(AuditEvent).where(AuditEvent.kind == "test.marker")) is None
    # Old WAL frames are overwritten by later ones; the file itself must hold nothing freed.
    with world.database.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = make_url(world.settings.db_url).database
    assert path
    survived = marker.encode() in Path(path).read_bytes()
    assert not survived, "the deleted value is still in the database file"
    # Set by the gateway on every connection, whatever the SQLite build's default.
    with world.database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
