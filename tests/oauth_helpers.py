"""Shared set-up for OAuth tests: registered clients and issued tokens, over real HTTP."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from livegate.db.engine import Database
from livegate.oauth.clients import create_client
from tests.flows import authorize_url, pkce_pair, query, sign_in, token_request

REDIRECT = "http://127.0.0.1:9/callback"
ALL = "webcast:fetch user:info webcast:bulk_live_check webcast:chat webcast:rankings"


@dataclass
class App:
    client_id: str
    client_secret: str | None
    redirect_uri: str = REDIRECT

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.client_id, self.client_secret) if self.client_secret else None


def assert_oauth_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 refusal, which no cache may keep."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == error, body
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    assert "Traceback" not in r.text
    return body


def register(
    database: Database,
    *,
    public: bool = False,
    scope: str = ALL,
    redirect_uris: list[str] | None = None,
) -> App:
    with database.session() as session:
        new = create_client(
            session,
            name="Test App " + secrets.token_hex(2),
            redirect_uris=redirect_uris or [REDIRECT],
            scope=scope,
            public=public,
        )
        return App(new.row.client_id, new.client_secret, (redirect_uris or [REDIRECT])[0])


def new_user() -> str:
    return "user" + secrets.token_hex(4)


def get_code(
    gw: str,
    sim: str,
    app: App,
    scope: str = "webcast:fetch user:info",
    pkce: bool = False,
    unique_id: str | None = None,
) -> tuple[str, str | None]:
    """A fresh authorization code (and the PKCE verifier, when used)."""
    extra: dict[str, str] = {}
    verifier = None
    if pkce:
        verifier, challenge = pkce_pair()
        extra = {"code_challenge": challenge, "code_challenge_method": "S256"}
    url = authorize_url(gw, app.client_id, app.redirect_uri, scope, **extra)
    redirect = sign_in(gw, sim, url, unique_id or new_user())
    return query(redirect)["code"], verifier


def exchange(
    gw: str, app: App, code: str, verifier: str | None = None, as_json: bool = False
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    if app.client_secret is None or as_json:
        data["client_id"] = app.client_id
        if app.client_secret:
            data["client_secret"] = app.client_secret
        return token_request(gw, data, as_json=as_json)
    return token_request(gw, data, auth=app.auth)


def tokens_for(
    gw: str,
    sim: str,
    app: App,
    scope: str = "webcast:fetch user:info",
    unique_id: str | None = None,
) -> dict[str, Any]:
    code, verifier = get_code(
        gw, sim, app, scope, pkce=app.client_secret is None, unique_id=unique_id
    )
    r = exchange(gw, app, code, verifier)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def refresh(gw: str, app: App, refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if app.client_secret is None:
        data["client_id"] = app.client_id
        return token_request(gw, data)
    return token_request(gw, data, auth=app.auth)


def introspect(gw: str, app: App, token: str, hint: str | None = None) -> dict[str, Any]:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    r = httpx.post(f"{gw}/tiktok/oauth/introspect", data=data, auth=app.auth, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def revoke(gw: str, app: App, token: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    if app.client_secret is None:
        data["client_id"] = app.client_id
        return httpx.post(f"{gw}/tiktok/oauth/revoke", data=data, timeout=10)
    return httpx.post(f"{gw}/tiktok/oauth/revoke", data=data, auth=app.auth, timeout=10)
