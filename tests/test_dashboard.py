"""Dashboard and /account over HTTP against the real servers: accounts, clients, keys, CSRF."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from typer.testing import CliRunner

from livegate import audit, cli
from livegate.apikeys import find_api_key
from livegate.app import create_app
from livegate.config import Settings
from livegate.dashboard import routes as dashboard_routes
from livegate.dashboard.service import create_developer
from livegate.db.engine import Database
from livegate.db.models import (
    AccessToken,
    ApiKey,
    AuditEvent,
    Developer,
    Grant,
    OAuthClient,
    SessionKeyWrap,
    TikTokSession,
    WebSession,
    utcnow,
)
from livegate.secrets import digest
from tests.flows import open_consent, phone, query, sign_in, sim_account
from tests.servers import ServerThread, free_port, wait_for

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)


def secret_on(html: str) -> str | None:
    """The one-time client secret a page shows, if it shows one."""
    m = re.search(r'id="client-secret" class="mono" readonly value="([^"]+)"', html)
    return m.group(1) if m else None


def api_key_on(html: str) -> str | None:
    m = re.search(r'id="api-key" class="mono" readonly value="([^"]+)"', html)
    return m.group(1) if m else None


def new_email() -> str:
    return f"dev-{secrets.token_hex(4)}@example.com"


class Dash:
    """One browser on the dashboard."""

    def __init__(self, gw_url: str) -> None:
        self.http = httpx.Client(base_url=gw_url, follow_redirects=False, timeout=15)
        self.csrf = ""

    def get(self, path: str, **kw: object) -> httpx.Response:
        r = self.http.get(path, **kw)  # type: ignore[arg-type]  # httpx overloads vs **kwargs
        if r.status_code == 200 and "csrf_token" in r.text:
            self.csrf = csrf_of(r.text)
        return r

    def post(
        self, path: str, data: dict[str, object] | None = None, csrf: bool = True
    ) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.csrf)
        r = self.http.post(path, data=body)
        if r.status_code in (200, 400) and "csrf_token" in r.text:
            self.csrf = csrf_of(r.text)
        return r

    def follow(self, r: httpx.Response) -> httpx.Response:
        """The page a POST redirected to (POST-redirect-GET)."""
        assert r.status_code == 303, (r.status_code, r.text[:500])
        return self.get(r.headers["location"])

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        self.get("/dashboard/login")
        return self.post("/dashboard/login", {"email": email, "password": password})

    def create_client(self, **fields: object) -> tuple[str, str | None, httpx.Response]:
        """Create a client through the form; (client_id, secret shown once, response)."""
        self.get("/dashboard/clients/new")
        data: dict[str, object] = {
            "name": "Dash App",
            "description": "Made on the dashboard",
            "redirect_uris": "http://127.0.0.1:9/callback",
            "scope": ["webcast:fetch", "user:info"],
            "client_type": "confidential",
            "theme": "auto",
        }
        data.update(fields)
        r = self.follow(self.post("/dashboard/clients", data))
        assert r.status_code == 200, r.text[:500]
        cid = re.search(r'data-testid="client-id">([^<]+)<', r.text)
        assert cid
        return cid.group(1), secret_on(r.text), r


def developer(database: Database, gw_url: str, admin: bool = False) -> tuple[Dash, str]:
    email = new_email()
    with database.session() as session:
        create_developer(session, email, PASSWORD, is_admin=admin)
    dash = Dash(gw_url)
    r = dash.login(email)
    assert r.status_code == 303, r.text[:300]
    return dash, email


class AccountBrowser:
    """One browser on /account, signing in with the QR flow."""

    def __init__(self, gw_url: str) -> None:
        self.http = httpx.Client(base_url=gw_url, follow_redirects=False, timeout=15)

    def sign_in(self, sim_url: str, unique_id: str) -> httpx.Response:
        account = sim_account(sim_url, unique_id)
        page = self.http.get("/account")
        assert page.status_code == 200
        r = self.http.post("/account/login", data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303, r.text[:300]
        qr_path = r.headers["location"]
        login_id = qr_path.rsplit("/", 1)[1]
        qr = self.http.get(qr_path)
        assert qr.status_code == 200, qr.text[:300]
        link = re.search(r'id="qr-link" href="([^"]+)"', qr.text)
        assert link, "QR page shows no sign-in link"
        token = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)["token"][0]
        assert phone(sim_url, token, "scan", account["uid"]).status_code == 200
        assert phone(sim_url, token, "confirm", account["uid"]).status_code == 200

        def done() -> str | None:
            s = self.http.get(f"/tiktok/oauth/login/{login_id}/status").json()
            redirect = s.get("redirect")
            return redirect if isinstance(redirect, str) else None

        redirect = wait_for(done, timeout=15, interval=0.1, what="account sign-in")
        assert redirect == "/account"
        apps = self.http.get(redirect)
        assert apps.status_code == 200, apps.text[:300]
        return apps


# -- tests ---------------------------------------------------------------------------------

REDIRECT = "http://127.0.0.1:9/callback"


def token_auth_status(gw_url: str, client_id: str, secret: str) -> str:
    """Does the secret authenticate at the token endpoint (client_secret_post)?

    A bogus refresh token with good credentials is refused as invalid_grant; bad credentials
    are refused first, as invalid_client.
    """
    r = httpx.post(
        f"{gw_url}/tiktok/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "lg_rt_nope",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code in (400, 401), r.text
    error: str = r.json()["error"]
    return error


def authorize(
    gw_url: str, sim_url: str, client_id: str, secret: str, unique_id: str
) -> dict[str, Any]:
    """The whole authorization-code flow for a dashboard-made client: the token response."""
    url = (
        f"/tiktok/oauth/authorize?response_type=code&client_id={client_id}"
        f"&redirect_uri={REDIRECT}&scope=webcast:fetch+user:info&state=xyz"
    )
    code = query(sign_in(gw_url, sim_url, url, unique_id))["code"]
    r = httpx.post(
        f"{gw_url}/tiktok/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(client_id, secret),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def introspect_active(gw_url: str, client_id: str, secret: str, token: str) -> bool:
    r = httpx.post(
        f"{gw_url}/tiktok/oauth/introspect",
        data={"token": token, "client_id": client_id, "client_secret": secret},
    )
    assert r.status_code == 200, r.text
    return bool(r.json()["active"])


def webcast_status(gw_url: str, token: str, unique_id: str) -> int:
    r = httpx.get(
        f"{gw_url}/webcast/room_id",
        params={"unique_id": unique_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    return r.status_code


def userinfo_status(gw_url: str, token: str) -> int:
    r = httpx.get(f"{gw_url}/tiktok/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def test_nul_characters_in_forms_are_a_bad_request(gateway: ServerThread) -> None:
    """PostgreSQL refuses NUL in text; that is the request's fault, never a 500."""
    dash = Dash(gateway.url)
    dash.get("/dashboard/signup")
    r = dash.post("/dashboard/signup", {"email": f"a\x00{new_email()}", "password": PASSWORD})
    assert r.status_code == 400, r.text[:300]
    dash.get("/dashboard/login")
    r = dash.post("/dashboard/login", {"email": f"a\x00{new_email()}", "password": PASSWORD})
    assert r.status_code in (400, 401), r.text[:300]
    dash.get("/dashboard/signup")
    r = dash.post("/dashboard/signup", {"email": new_email(), "password": PASSWORD})
    assert r.status_code == 303
    dash.get("/dashboard/clients/new")
    data: dict[str, object] = {
        "name": "nul\x00app",
        "redirect_uris": "http://127.0.0.1:9/callback",
        "scope": ["webcast:fetch"],
        "client_type": "confidential",
        "theme": "auto",
    }
    r = dash.post("/dashboard/clients", data)
    assert r.status_code in (303, 400), r.text[:300]


def test_signup_signin_signout(gateway: ServerThread) -> None:
    dash = Dash(gateway.url)
    page = dash.get("/dashboard/signup")
    assert page.status_code == 200
    email = new_email()
    r = dash.post("/dashboard/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/clients"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("lg_dev="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
    assert "Secure" not in session  # served over plain http here
    assert any(c.startswith("lg_csrf=") and "HttpOnly" in c for c in cookies)

    home = dash.get("/dashboard/clients")
    assert home.status_code == 200 and email in home.text

    # The same email twice is refused; so is a short password.
    other = Dash(gateway.url)
    other.get("/dashboard/signup")
    assert (
        other.post("/dashboard/signup", {"email": email.upper(), "password": PASSWORD}).status_code
        == 400
    )
    assert (
        other.post("/dashboard/signup", {"email": new_email(), "password": "short"}).status_code
        == 400
    )

    assert dash.post("/dashboard/logout").status_code == 303
    r = dash.get("/dashboard/clients")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"

    assert dash.login(email, "wrong password!").status_code == 401
    assert dash.login(email).status_code == 303
    assert dash.get("/dashboard/clients").status_code == 200


def test_session_is_stored_as_digest(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    token = dash.http.cookies.get("lg_dev")
    assert token and token.startswith("lg_ws_")
    with database.session() as session:
        assert session.scalar(select(WebSession).where(WebSession.token_digest == token)) is None
        assert session.scalar(select(WebSession).where(WebSession.token_digest == digest(token)))


def test_signup_can_be_closed(gateway_settings: Settings, database: Database) -> None:
    settings = gateway_settings.model_copy(update={"signup": False, "port": free_port()})
    server = ServerThread(create_app(settings, database)).start()
    try:
        dash = Dash(server.url)
        assert dash.get("/dashboard/signup").status_code == 403
        dash.get("/dashboard/login")
        r = dash.post("/dashboard/signup", {"email": new_email(), "password": PASSWORD})
        assert r.status_code == 403
        # An account made with the CLI (or by an admin) still signs in.
        email = new_email()
        with database.session() as session:
            create_developer(session, email, PASSWORD)
        assert dash.login(email).status_code == 303
    finally:
        server.stop()


def test_cli_creates_admin(
    gateway_settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEGATE_DATABASE_URL", gateway_settings.db_url)
    monkeypatch.setenv("LIVEGATE_DATA_DIR", str(gateway_settings.data_dir))
    email = new_email()
    result = CliRunner().invoke(
        cli.app,
        ["developers", "create", "--email", email, "--password-stdin", "--admin", "--json"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["admin"] is True
    with database.session() as session:
        row = session.scalar(select(Developer).where(Developer.email == email))
        assert row is not None and row.is_admin and row.password_hash.startswith("$argon2id$")
    again = CliRunner().invoke(
        cli.app, ["developers", "create", "--email", email, "--password", PASSWORD]
    )
    assert again.exit_code == 2


def test_create_client_secret_shown_once(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, secret, page = dash.create_client(
        name="Once App",
        logo_url="https://example.com/logo.png",
        homepage_url="https://example.com",
        scope=["webcast:fetch", "user:info", "webcast:chat"],
        theme="dark",
    )
    assert secret and secret.startswith("lg_cs_")
    assert "shown only once" in page.text
    assert page.headers["cache-control"] == "no-store"
    shown = dash.get(f"/dashboard/clients/{client_id}")
    assert shown.status_code == 200 and secret not in shown.text
    assert secret not in dash.get("/dashboard/clients").text
    with database.session() as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row is not None
        assert row.secret_digest == digest(secret)
        assert row.owner_id is not None and row.theme == "dark"
        assert row.scopes == ["webcast:fetch", "user:info", "webcast:chat"]
    info = httpx.get(f"{gateway.url}/tiktok/oauth/clients/{client_id}").json()
    assert info["name"] == "Once App" and info["logo"] == "https://example.com/logo.png"
    assert (
        token_auth_status(gateway.url, client_id, secret) == "invalid_grant"
    )  # authenticated: bad grant

    # A public client has no secret.
    pub_id, pub_secret, _ = dash.create_client(name="Public App", client_type="public")
    assert pub_secret is None
    assert (
        httpx.get(f"{gateway.url}/tiktok/oauth/clients/{pub_id}").json()["client_type"] == "public"
    )


def test_client_form_rules(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    dash.get("/dashboard/clients/new")
    base = {
        "name": "Bad",
        "scope": ["webcast:fetch"],
        "client_type": "confidential",
        "theme": "auto",
    }
    for uris in ("http://example.com/cb", "https://example.com/cb#frag", "ftp://x/y", ""):
        r = dash.post("/dashboard/clients", {**base, "redirect_uris": uris})
        assert r.status_code == 400, uris
        assert 'data-testid="error"' in r.text
    r = dash.post("/dashboard/clients", {**base, "redirect_uris": REDIRECT, "scope": []})
    assert r.status_code == 400
    r = dash.post(
        "/dashboard/clients", {**base, "redirect_uris": REDIRECT, "logo_url": "javascript:alert(1)"}
    )
    assert r.status_code == 400
    ok = dash.post(
        "/dashboard/clients",
        {**base, "redirect_uris": "https://app.example.com/cb\nhttp://localhost:3000/cb"},
    )
    assert ok.status_code == 303


def test_edit_client(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, _, _ = dash.create_client()
    dash.get(f"/dashboard/clients/{client_id}")
    r = dash.post(
        f"/dashboard/clients/{client_id}",
        {
            "name": "Renamed",
            "description": "new words",
            "redirect_uris": "https://renamed.example.com/cb",
            "scope": ["webcast:fetch", "webcast:bulk_live_check"],
            "theme": "light",
            "homepage_url": "https://renamed.example.com",
        },
    )
    assert r.status_code == 303, r.text[:400]
    page = dash.get(r.headers["location"])
    assert "Changes saved" in page.text and "Renamed" in page.text
    info = httpx.get(f"{gateway.url}/tiktok/oauth/clients/{client_id}").json()
    assert info["name"] == "Renamed" and info["theme"] == "light"
    assert info["redirect_uris"] == ["https://renamed.example.com/cb"]
    assert info["supported_scopes"] == ["webcast:fetch", "webcast:bulk_live_check"]
    bad = dash.post(
        f"/dashboard/clients/{client_id}",
        {
            "name": "X",
            "redirect_uris": "http://evil.example/cb",
            "scope": ["webcast:fetch"],
            "theme": "auto",
        },
    )
    assert bad.status_code == 400
    assert httpx.get(f"{gateway.url}/tiktok/oauth/clients/{client_id}").json()["name"] == "Renamed"


def test_rotate_secret_with_grace_period(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, old, _ = dash.create_client()
    assert old
    dash.get(f"/dashboard/clients/{client_id}")
    r = dash.follow(dash.post(f"/dashboard/clients/{client_id}/rotate"))
    new = secret_on(r.text)
    assert new and new != old
    assert 'data-testid="grace-until"' in r.text
    assert "24 hours" in r.text and "New secret issued" in r.text
    # Both work during the grace period, at the token endpoint (client_secret_post).
    assert token_auth_status(gateway.url, client_id, new) == "invalid_grant"
    assert token_auth_status(gateway.url, client_id, old) == "invalid_grant"
    assert token_auth_status(gateway.url, client_id, "lg_cs_wrong") == "invalid_client"
    page = dash.get(f"/dashboard/clients/{client_id}")
    assert 'data-testid="grace-until"' in page.text and new not in page.text
    # The grace period ends: only the new secret works.
    with database.session() as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row is not None
        row.previous_secret_expires_at = utcnow() - dt.timedelta(seconds=1)
    assert token_auth_status(gateway.url, client_id, old) == "invalid_client"
    assert token_auth_status(gateway.url, client_id, new) == "invalid_grant"
    assert 'data-testid="grace-until"' not in dash.get(f"/dashboard/clients/{client_id}").text


def test_delete_client_revokes_everything(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, secret, _ = dash.create_client()
    assert secret
    token = authorize(gateway.url, sim.url, client_id, secret, "del" + secrets.token_hex(3))
    assert userinfo_status(gateway.url, token["access_token"]) == 200
    dash.get(f"/dashboard/clients/{client_id}")
    r = dash.post(f"/dashboard/clients/{client_id}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/clients?deleted=1"
    assert userinfo_status(gateway.url, token["access_token"]) == 401
    assert dash.get(f"/dashboard/clients/{client_id}").status_code == 404
    assert token_auth_status(gateway.url, client_id, secret) == "invalid_client"
    with database.session() as session:
        assert session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id)) is None
        assert (
            session.scalar(
                select(func.count(AccessToken.id)).where(
                    AccessToken.token_digest == digest(token["access_token"])
                )
            )
            == 0
        )


def test_other_developers_client_is_forbidden(gateway: ServerThread, database: Database) -> None:
    alice, _ = developer(database, gateway.url)
    bob, _ = developer(database, gateway.url)
    client_id, secret, _ = alice.create_client(name="Alice App")
    alice.get("/dashboard/apikeys")
    alice.post("/dashboard/apikeys", {"name": "alice key"})
    with database.session() as session:
        key_id = session.scalar(
            select(ApiKey.id).where(ApiKey.name == "alice key").order_by(ApiKey.id.desc())
        )

    assert client_id not in bob.get("/dashboard/clients").text
    for path in ("", "/usage", "/usage.csv", "/usage?window=30d"):
        r = bob.get(f"/dashboard/clients/{client_id}{path}")
        assert r.status_code == 403, path
    bob.get("/dashboard/clients")  # a fresh, valid CSRF token for Bob
    edit: dict[str, object] = {
        "name": "Hijacked",
        "redirect_uris": "https://evil.example/cb",
        "scope": ["webcast:fetch"],
        "theme": "auto",
    }
    assert bob.post(f"/dashboard/clients/{client_id}", edit).status_code == 403
    assert bob.post(f"/dashboard/clients/{client_id}/rotate").status_code == 403
    assert bob.post(f"/dashboard/clients/{client_id}/delete").status_code == 403
    assert bob.post("/dashboard/apikeys", {"name": "x", "client_id": client_id}).status_code == 403
    assert bob.post(f"/dashboard/apikeys/{key_id}/revoke").status_code == 403
    # Nothing changed.
    info = httpx.get(f"{gateway.url}/tiktok/oauth/clients/{client_id}").json()
    assert info["name"] == "Alice App"
    assert secret and token_auth_status(gateway.url, client_id, secret) == "invalid_grant"
    with database.session() as session:
        key = session.get(ApiKey, key_id)
        assert key is not None and key.revoked_at is None

    # An admin sees and may manage every client.
    admin, _ = developer(database, gateway.url, admin=True)
    assert client_id in admin.get("/dashboard/clients").text
    assert admin.get(f"/dashboard/clients/{client_id}").status_code == 200
    assert admin.get(f"/dashboard/clients/{client_id}/usage").status_code == 200


def _post_routes() -> list[str]:
    paths = []
    routes = [route for router in dashboard_routes.ROUTERS for route in router.routes]
    for route in routes:
        if isinstance(route, APIRoute) and "POST" in (route.methods or set()):
            paths.append(
                route.path.replace("{client_id}", "lgc_x")
                .replace("{key_id}", "1")
                .replace("{grant_id}", "1")
            )
    return paths


def test_every_post_without_csrf_is_refused(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    paths = _post_routes()
    assert len(paths) >= 10
    dash, _ = developer(database, gateway.url)
    client_id, secret, _ = dash.create_client()
    real = [p.replace("lgc_x", client_id) for p in paths]
    acct = AccountBrowser(gateway.url)
    acct.sign_in(sim.url, "csrf" + secrets.token_hex(3))
    for path in real:
        for browser in (dash.http, acct.http, httpx.Client(base_url=gateway.url)):
            r = browser.post(path, data={"name": "x", "email": "a@b.co", "password": PASSWORD})
            assert r.status_code == 403, (path, r.status_code)
            r = browser.post(path, data={"csrf_token": "forged"})
            assert r.status_code == 403, (path, r.status_code)
    # A token from another browser does not work either.
    other, _ = developer(database, gateway.url)
    other.get("/dashboard/clients")
    r = dash.http.post(f"/dashboard/clients/{client_id}/delete", data={"csrf_token": other.csrf})
    assert r.status_code == 403
    assert (
        secret and token_auth_status(gateway.url, client_id, secret) == "invalid_grant"
    )  # still there


def test_pages_refuse_framing_and_have_strict_csp(
    gateway: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, _, _ = dash.create_client()
    anon = Dash(gateway.url)
    pages = [(anon, "/dashboard/login"), (anon, "/dashboard/signup"), (anon, "/account")] + [
        (dash, p)
        for p in (
            "/dashboard/clients",
            "/dashboard/clients/new",
            f"/dashboard/clients/{client_id}",
            f"/dashboard/clients/{client_id}/usage",
            "/dashboard/apikeys",
        )
    ]
    for browser, path in pages:
        r = browser.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "script-src 'self'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text and " style=" not in r.text


def test_login_rate_limit(gateway: ServerThread, database: Database) -> None:
    email = new_email()
    with database.session() as session:
        create_developer(session, email, PASSWORD)
    dash = Dash(gateway.url)
    codes = [dash.login(email, "wrong password!").status_code for _ in range(10)]
    assert codes == [401] * 10
    r = dash.login(email)  # even the right password, once the limit is reached
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many attempts" in r.text


def test_api_keys(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, _, _ = dash.create_client()
    dash.get("/dashboard/apikeys")
    r = dash.follow(dash.post("/dashboard/apikeys", {"name": "ci key", "client_id": client_id}))
    key = api_key_on(r.text)
    assert key and key.startswith("lg_ak_")
    listing = dash.get("/dashboard/apikeys")
    assert "ci key" in listing.text and key not in listing.text
    with database.session() as session:
        row = find_api_key(session, key)
        assert row is not None and row.name == "ci key" and row.client_pk is not None
        key_id = row.id
    r = dash.post(f"/dashboard/apikeys/{key_id}/revoke")
    assert r.status_code == 303
    assert "API key revoked" in dash.get(r.headers["location"]).text
    with database.session() as session:
        assert find_api_key(session, key) is None


def test_usage_page_and_csv(gateway: ServerThread, sim: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, secret, _ = dash.create_client()
    assert secret
    token = authorize(gateway.url, sim.url, client_id, secret, "use" + secrets.token_hex(3))
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(client_id, secret),
    )
    assert r.status_code == 200
    # Consent refused once (the user pressed Cancel).
    url = (
        f"/tiktok/oauth/authorize?response_type=code&client_id={client_id}"
        f"&redirect_uri={REDIRECT}&scope=webcast:fetch&state=s"
    )
    browser, login_id, csrf = open_consent(gateway.url, url)
    assert (
        browser.post(
            f"/tiktok/oauth/login/{login_id}/cancel", data={"csrf_token": csrf}
        ).status_code
        == 303
    )
    # Webcast calls, as the webcast API records them (another part of livegate).
    with database.session() as session:
        pk = session.scalar(select(OAuthClient.id).where(OAuthClient.client_id == client_id))
        for route, status in [("fetch", 200), ("fetch", 200), ("fetch", 429), ("room_info", 404)]:
            audit.record(session, "webcast.call", client_pk=pk, route=route, status=status)
        old = AuditEvent(
            kind="webcast.call",
            client_pk=pk,
            detail={"route": "fetch", "status": 200},
            at=utcnow() - dt.timedelta(days=3),
        )
        session.add(old)
        # Three calls as the webcast API writes them under load: counted in one row.
        batch = AuditEvent(
            kind="webcast.call", client_pk=pk, detail={"route": "fetch", "status": 200, "count": 3}
        )
        session.add(batch)

    # One real call through the webcast API, which records it in the background.
    live = webcast_status(gateway.url, token["access_token"], "nobody" + secrets.token_hex(3))

    def usage_page() -> httpx.Response | None:
        r = dash.get(f"/dashboard/clients/{client_id}/usage")
        return r if 'data-counter="webcast_calls">8<' in r.text else None

    page = wait_for(usage_page, timeout=10, interval=0.2, what="the webcast call on the usage page")
    counters = dict(re.findall(r'data-counter="(\w+)">(\d+)<', page.text))
    assert counters == {
        "authorizations_started": "2",
        "authorizations_completed": "1",
        "authorizations_refused": "1",
        "active_grants": "1",
        "token_refreshes": "1",
        "webcast_calls": "8",
        "rate_limited": "1",
    }
    assert "<svg" in page.text and 'role="img"' in page.text
    month = dash.get(f"/dashboard/clients/{client_id}/usage?window=30d")
    assert dict(re.findall(r'data-counter="(\w+)">(\d+)<', month.text))["webcast_calls"] == "9"

    csv_r = dash.get(f"/dashboard/clients/{client_id}/usage.csv?window=24h")
    assert csv_r.status_code == 200
    assert csv_r.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_r.text)))
    header = rows[0]
    assert header[0] == "bucket_start" and "webcast_calls" in header
    hourly = [r for r in rows[1:] if r and r[0] != "route" and len(r) == len(header)]
    assert len(hourly) == 24
    assert sum(int(r[header.index("webcast_calls")]) for r in hourly) == 8
    assert sum(int(r[header.index("authorizations_completed")]) for r in hourly) == 1
    assert ["fetch", "200", "5"] in rows and ["fetch", "429", "1"] in rows
    assert ["GET /webcast/room_id", str(live), "1"] in rows
    month_csv = list(
        csv.reader(
            io.StringIO(dash.get(f"/dashboard/clients/{client_id}/usage.csv?window=30d").text)
        )
    )
    assert len([r for r in month_csv[1:] if r and r[0][:2] == "20"]) == 30


def test_usage_empty_shows_zeros(gateway: ServerThread, database: Database) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, _, _ = dash.create_client()
    page = dash.get(f"/dashboard/clients/{client_id}/usage")
    counters = dict(re.findall(r'data-counter="(\w+)">(\d+)<', page.text))
    assert set(counters.values()) == {"0"}
    assert "No webcast calls" in page.text


def test_account_lists_and_revokes_apps(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, secret, _ = dash.create_client(
        name="Connected App", logo_url="https://example.com/l.png"
    )
    other_id, other_secret, _ = dash.create_client(name="Second App")
    assert secret and other_secret
    user = "acct" + secrets.token_hex(3)
    token = authorize(gateway.url, sim.url, client_id, secret, user)
    token2 = authorize(gateway.url, sim.url, other_id, other_secret, user)
    assert userinfo_status(gateway.url, token["access_token"]) == 200
    assert webcast_status(gateway.url, token["access_token"], user) != 401

    # Signed out: the sign-in page.
    anon = httpx.get(f"{gateway.url}/account")
    assert anon.status_code == 200 and 'action="/account/login"' in anon.text

    acct = AccountBrowser(gateway.url)
    page = acct.sign_in(sim.url, user)
    assert f"@{user}" in page.text
    assert "Connected App" in page.text and "Second App" in page.text
    assert "Read LIVE events" in page.text and "Read your profile" in page.text
    # The session cookie was swapped after the sign-in, and is scoped to /account.
    cookie = acct.http.cookies.get("lg_acct", path="/account")
    assert cookie
    set_cookies = page.headers.get_list("set-cookie")
    assert any(
        c.startswith("lg_acct=") and "Path=/account" in c and "HttpOnly" in c for c in set_cookies
    )

    grant_id = re.search(
        r'data-grant-id="(\d+)">\s*<div class="app-head">\s*<img class="logo" src="https://example.com/l.png"',
        page.text,
    )
    assert grant_id
    r = acct.http.post(
        f"/account/apps/{grant_id.group(1)}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 303
    after = acct.http.get(r.headers["location"])
    assert "Connected App is disconnected" in after.text
    assert f'data-grant-id="{grant_id.group(1)}"' not in after.text and "Second App" in after.text

    # Every token of that grant died at once; the other app is untouched.
    assert userinfo_status(gateway.url, token["access_token"]) == 401
    assert webcast_status(gateway.url, token["access_token"], user) == 401
    assert not introspect_active(gateway.url, client_id, secret, token["access_token"])
    assert not introspect_active(gateway.url, client_id, secret, token["refresh_token"])
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(client_id, secret),
    )
    assert r.status_code == 400
    assert userinfo_status(gateway.url, token2["access_token"]) == 200
    assert introspect_active(gateway.url, other_id, other_secret, token2["access_token"])
    with database.session() as session:
        gid = int(grant_id.group(1))
        grant = session.get(Grant, gid)
        assert grant is not None and grant.status == "revoked"
        assert (
            session.scalar(
                select(func.count(TikTokSession.id)).where(TikTokSession.grant_id == gid)
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count(SessionKeyWrap.id))
                .join(TikTokSession)
                .where(TikTokSession.grant_id == gid)
            )
            == 0
        )

    # Somebody else's grant: not found, not revoked.
    other_user = AccountBrowser(gateway.url)
    page2 = other_user.sign_in(sim.url, "other" + secrets.token_hex(3))
    assert 'data-testid="no-apps"' in page2.text
    with database.session() as session:
        g2 = session.scalar(
            select(Grant.id).where(Grant.client.has(OAuthClient.client_id == other_id))
        )
    r = other_user.http.post(f"/account/apps/{g2}/revoke", data={"csrf_token": csrf_of(page2.text)})
    assert r.status_code == 404
    assert userinfo_status(gateway.url, token2["access_token"]) == 200

    # Sign out.
    page = acct.http.get("/account")
    assert (
        acct.http.post("/account/logout", data={"csrf_token": csrf_of(page.text)}).status_code
        == 303
    )
    assert 'action="/account/login"' in acct.http.get("/account").text


def test_account_signin_cancelled(gateway: ServerThread, database: Database) -> None:
    browser = httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=15)
    page = browser.get("/account")
    r = browser.post("/account/login", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    qr = browser.get(r.headers["location"])
    login_id = r.headers["location"].rsplit("/", 1)[1]
    cancel = browser.post(
        f"/tiktok/oauth/login/{login_id}/cancel", data={"csrf_token": csrf_of(qr.text)}
    )
    assert cancel.status_code == 303
    assert cancel.headers["location"].startswith(f"{gateway.url}/account?error=access_denied")
    back = browser.get(cancel.headers["location"])
    assert "did not finish" in back.text and 'action="/account/login"' in back.text


def test_cookies_are_secure_behind_https(gateway_settings: Settings, database: Database) -> None:
    """Served under an https public URL (behind a TLS proxy): every cookie is Secure."""
    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": f"https://127.0.0.1:{port}"}
    )
    server = ServerThread(create_app(settings, database), port=port).start()
    try:
        email = new_email()
        with database.session() as session:
            create_developer(session, email, PASSWORD)
        dash = Dash(server.url)
        page = dash.http.get("/dashboard/login")
        csrf_cookie = next(
            c for c in page.headers.get_list("set-cookie") if c.startswith("lg_csrf=")
        )
        assert "Secure" in csrf_cookie and "HttpOnly" in csrf_cookie
        # httpx keeps Secure cookies away from http://, so hand the CSRF cookie over ourselves.
        value = csrf_cookie.split(";", 1)[0].split("=", 1)[1]
        r = dash.http.post(
            "/dashboard/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            cookies={"lg_csrf": value},
        )
        assert r.status_code == 303
        session_cookie = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith("lg_dev=")
        )
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
        assert "SameSite=lax" in session_cookie
    finally:
        server.stop()


def test_expired_sessions_are_purged(database: Database) -> None:
    from livegate.dashboard import sessions
    from livegate.housekeeping import purge_all

    with database.session() as session:
        token, row = sessions.create(session, "developer", ttl=60)
        row.expires_at = utcnow() - dt.timedelta(days=1)
        live_token, _ = sessions.create(session, "developer", ttl=3600)
    with database.session() as session:
        assert sessions.find(session, token, ("developer",), 60) is None  # expired: refused
    purge_all(database)
    with database.session() as session:
        assert (
            session.scalar(select(WebSession).where(WebSession.token_digest == digest(token)))
            is None
        )
        assert sessions.find(session, live_token, ("developer",), 3600) is not None


# -- POST-redirect-GET and secrets shown once ------------------------------------------------


def client_count(database: Database, owner_email: str, name: str) -> int:
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count(OAuthClient.id))
                .join(Developer, Developer.id == OAuthClient.owner_id)
                .where(Developer.email == owner_email, OAuthClient.name == name)
            )
            or 0
        )


def cleared_once(r: httpx.Response) -> bool:
    """Whether the answer deletes the one-time cookie."""
    return any(
        c.startswith("lg_once=") and "Max-Age=0" in c for c in r.headers.get_list("set-cookie")
    )


def once_cookie(r: httpx.Response) -> str:
    """The sealed one-time cookie a POST's redirect sets (and its attributes)."""
    return next(c for c in r.headers.get_list("set-cookie") if c.startswith("lg_once="))


@pytest.mark.spec(
    "livegate", "security: a new client secret is shown once; a refresh repeats nothing"
)
def test_refreshing_after_creating_a_client_creates_nothing_and_shows_no_secret(
    gateway: ServerThread, database: Database
) -> None:
    dash, email = developer(database, gateway.url)
    dash.get("/dashboard/clients/new")
    form: dict[str, object] = {
        "name": "My app",
        "redirect_uris": REDIRECT,
        "scope": ["webcast:fetch"],
        "client_type": "confidential",
        "theme": "auto",
    }
    r = dash.post("/dashboard/clients", form)
    assert r.status_code == 303
    location = r.headers["location"]
    assert re.fullmatch(r"/dashboard/clients/lgc_[\w-]+", location), location
    cookie = once_cookie(r)
    assert f"Path={location}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = dash.get(location)
    secret = secret_on(page.text)
    assert secret and secret.startswith("lg_cs_") and "Client created" in page.text
    # Neither the redirect nor the cookie carries the secret readably.
    assert secret not in location and secret not in cookie
    assert cleared_once(page)
    # The refresh: the same page, no secret, no message, and still one client of that name.
    again = dash.get(location)
    assert again.status_code == 200 and secret_on(again.text) is None
    assert secret not in again.text and "Client created" not in again.text
    assert client_count(database, email, "My app") == 1
    assert token_auth_status(gateway.url, location.rsplit("/", 1)[1], secret) == "invalid_grant"


@pytest.mark.spec("livegate", "security: a rotated secret is shown once; a refresh rotates nothing")
def test_refreshing_after_rotating_a_secret_rotates_nothing_and_shows_no_secret(
    gateway: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    client_id, first, _ = dash.create_client()
    assert first
    r = dash.post(f"/dashboard/clients/{client_id}/rotate")
    assert r.status_code == 303 and r.headers["location"] == f"/dashboard/clients/{client_id}"
    page = dash.get(r.headers["location"])
    second = secret_on(page.text)
    assert second and second != first and "New secret issued" in page.text
    again = dash.get(r.headers["location"])
    assert secret_on(again.text) is None and second not in again.text
    with database.session() as session:
        row = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
        assert row is not None
        # Rotated exactly once: the current secret is the one shown, the previous the first.
        assert row.secret_digest == digest(second)
        assert row.previous_secret_digest == digest(first)
    assert token_auth_status(gateway.url, client_id, first) == "invalid_grant"
    assert token_auth_status(gateway.url, client_id, second) == "invalid_grant"


@pytest.mark.spec("livegate", "security: a new API key is shown once; a refresh creates nothing")
def test_refreshing_after_creating_an_api_key_creates_nothing_and_shows_no_key(
    gateway: ServerThread, database: Database
) -> None:
    dash, email = developer(database, gateway.url)
    dash.get("/dashboard/apikeys")
    r = dash.post("/dashboard/apikeys", {"name": "refresh key"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/apikeys"
    page = dash.get("/dashboard/apikeys")
    key = api_key_on(page.text)
    assert key and key.startswith("lg_ak_") and "shown only once" in page.text
    again = dash.get("/dashboard/apikeys")
    assert api_key_on(again.text) is None and key not in again.text
    assert len(re.findall(r"<td[^>]*>refresh key</td>", again.text)) == 1
    with database.session() as session:
        keys = session.scalars(
            select(ApiKey)
            .join(Developer, Developer.id == ApiKey.owner_id)
            .where(Developer.email == email)
        ).all()
        assert [k.name for k in keys] == ["refresh key"]
        assert find_api_key(session, key) is not None


@pytest.mark.spec("livegate", "security: a one-time secret opens only for the session that made it")
def test_a_one_time_secret_cookie_opens_nowhere_else(
    gateway: ServerThread, database: Database
) -> None:
    alice, _ = developer(database, gateway.url)
    alice.get("/dashboard/apikeys")
    r = alice.post("/dashboard/apikeys", {"name": "alice once"})
    sealed = once_cookie(r).split(";", 1)[0].split("=", 1)[1]
    # Another developer's session presenting Alice's cookie sees no key.
    bob, _ = developer(database, gateway.url)
    page = bob.get("/dashboard/apikeys", cookies={"lg_once": sealed})
    assert page.status_code == 200 and api_key_on(page.text) is None
    assert cleared_once(page)  # the cookie did arrive, and was dropped
    # Nor does Alice on another page than the one it was sealed for.
    client_id, _, _ = alice.create_client()
    shown = alice.get(f"/dashboard/clients/{client_id}", cookies={"lg_once": sealed})
    assert cleared_once(shown)
    assert secret_on(shown.text) is None and "lg_ak_" not in shown.text
    # A forged or damaged cookie is ignored, never an error.
    flipped = sealed[:10] + ("B" if sealed[10] == "A" else "A") + sealed[11:]
    for value in ("nonsense", sealed[:-4], flipped):
        page = alice.get("/dashboard/apikeys", cookies={"lg_once": value})
        assert page.status_code == 200 and cleared_once(page) and api_key_on(page.text) is None
    # Alice's own, on its page, in her session: shown (once).
    page = alice.get("/dashboard/apikeys", cookies={"lg_once": sealed})
    key = api_key_on(page.text)
    assert key and key.startswith("lg_ak_")


def test_the_api_key_form_shows_each_clients_id_beside_its_name(
    gateway: ServerThread, database: Database
) -> None:
    dash, _ = developer(database, gateway.url)
    first, _, _ = dash.create_client(name="My app")
    second, _, _ = dash.create_client(name="My app")
    page = dash.get("/dashboard/apikeys")
    options = dict(re.findall(r'<option value="(lgc_[^"]+)">([^<]+)</option>', page.text))
    assert options == {first: f"My app ({first})", second: f"My app ({second})"}
    r = dash.post("/dashboard/apikeys", {"name": "for the second", "client_id": second})
    listing = dash.follow(r)
    row = re.search(r"<td[^>]*>for the second</td>.*?</tr>", listing.text, re.S)
    assert row and second in row.group(0) and first not in row.group(0)


def test_every_dashboard_and_account_route_is_documented_as_a_page(gateway: ServerThread) -> None:
    doc = httpx.get(f"{gateway.url}/openapi.json").json()
    routes = {
        (method, route.path)
        for router in dashboard_routes.ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert len(routes) >= 20
    for method, path in routes:
        op = doc["paths"][path][method.lower()]
        assert op["summary"] and op["tags"] in (["dashboard"], ["account"]), (method, path)
        content = next(iter(op["responses"].values()))["content"]
        expected = "text/csv" if path.endswith(".csv") else "text/html"
        assert expected in content, (method, path, content)
