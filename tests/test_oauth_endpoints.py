"""The refresh, revocation, introspection, validate-refresh, userinfo and metadata endpoints:
what they answer, and their refusals in the standard shape."""

from __future__ import annotations

import threading

import httpx
import pytest

from livegate.db.engine import Database
from tests.oauth_helpers import (
    REDIRECT,
    assert_oauth_error,
    exchange,
    get_code,
    introspect,
    refresh,
    register,
    revoke,
    tokens_for,
)
from tests.servers import ServerThread

spec = pytest.mark.spec


# -- refresh, revocation, introspection -------------------------------------------------------


@spec("RFC 6749", "6")
@spec("RFC 6749", "5.1")
@spec("RFC 9700", "4.14.2")
def test_refresh_rotates_and_reuse_revokes_family(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    t1 = tokens_for(gateway.url, sim.url, app)
    r = refresh(gateway.url, app, t1["refresh_token"])
    assert r.status_code == 200, r.text
    # RFC 6749 §5.1: no cache keeps a token answer.
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    t2 = r.json()
    assert t2["refresh_token"] != t1["refresh_token"] and t2["access_token"] != t1["access_token"]
    # Refresh lifetime counts from the user's authorization, not from the rotation.
    assert t2["refresh_expires_in"] <= t1["refresh_expires_in"]
    assert introspect(gateway.url, app, t2["access_token"])["active"] is True
    # The rotated token comes back: the whole family dies.
    assert_oauth_error(refresh(gateway.url, app, t1["refresh_token"]), 400, "invalid_grant")
    assert introspect(gateway.url, app, t2["access_token"]) == {"active": False}
    assert_oauth_error(refresh(gateway.url, app, t2["refresh_token"]), 400, "invalid_grant")


@spec("RFC 9700", "4.14.2")
def test_concurrent_refresh_exactly_one_wins(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    t1 = tokens_for(gateway.url, sim.url, app)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(refresh(gateway.url, app, t1["refresh_token"]).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [200, 400, 400, 400]


@spec("RFC 7009", "2.1")
@spec("RFC 7662", "2.2")
def test_revoke_and_introspect(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app, other = register(database), register(database)
    t = tokens_for(gateway.url, sim.url, app)
    info = introspect(gateway.url, app, t["access_token"])
    assert info["active"] is True
    assert info["client_id"] == app.client_id
    assert info["scope"] == "webcast:fetch user:info"
    assert info["token_type"] == "Bearer"
    assert info["exp"] > info["iat"]
    # Another client learns nothing about it.
    assert introspect(gateway.url, other, t["access_token"]) == {"active": False}
    assert introspect(gateway.url, app, "lg_at_unknown") == {"active": False}
    # Revoking the refresh token takes its access token along.
    r = revoke(gateway.url, app, t["refresh_token"], "refresh_token")
    assert r.status_code == 200 and r.json() == {}
    assert introspect(gateway.url, app, t["access_token"]) == {"active": False}
    assert introspect(gateway.url, app, t["refresh_token"]) == {"active": False}
    # Unknown tokens revoke "successfully" (RFC 7009 §2.2).
    assert revoke(gateway.url, app, "lg_at_whatever").status_code == 200
    # An invalid hint is ignored (RFC 7009 §2.1); a missing token is not.
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/revoke",
        data={"token": "lg_at_x", "token_type_hint": "bogus"},
        auth=app.auth,
    )
    assert r.status_code == 200
    r = httpx.post(f"{gateway.url}/tiktok/oauth/revoke", data={}, auth=app.auth)
    assert_oauth_error(r, 400, "invalid_request")
    r = httpx.post(f"{gateway.url}/tiktok/oauth/introspect", data={"token": t["access_token"]})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@spec("RFC 7009", "2.1")
def test_revoke_access_token_only(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database, public=True)
    t = tokens_for(gateway.url, sim.url, app)
    assert revoke(gateway.url, app, t["access_token"]).status_code == 200
    r = httpx.get(
        f"{gateway.url}/tiktok/oauth/userinfo",
        headers={"Authorization": f"Bearer {t['access_token']}"},
    )
    assert r.status_code == 401
    # The refresh token still works and gives a new, working access token.
    r2 = refresh(gateway.url, app, t["refresh_token"])
    assert r2.status_code == 200
    r3 = httpx.get(
        f"{gateway.url}/tiktok/oauth/userinfo", headers={"x-oauth-token": r2.json()["access_token"]}
    )
    assert r3.status_code == 200


# -- JSON dialect ------------------------------------------------------------------------------


def test_json_dialect_envelopes(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    r = exchange(gateway.url, app, code, as_json=True)
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 200 and body["error"] is None
    data = body["data"]
    assert data["token_type"] == "Bearer" and data["expires_in"] == 3600
    assert data["scopes"] == ["webcast:fetch", "user:info"]
    assert data["refresh_expires_in"] > 0
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": "lg_rt_bad",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert r.status_code == 400
    err = r.json()
    assert err["code"] == 400 and err["data"] is None
    assert err["error"]["error"] == "invalid_grant"
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/introspect",
        json={
            "token": data["access_token"],
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert r.json()["data"]["active"] is True
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/revoke",
        json={
            "token": data["access_token"],
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert r.status_code == 200 and r.json()["code"] == 200


def test_validate_refresh_does_not_consume(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    t = tokens_for(gateway.url, sim.url, app)
    url = f"{gateway.url}/tiktok/oauth/validate-refresh"
    r = httpx.post(url, data={"refresh_token": t["refresh_token"]}, auth=app.auth)
    body = r.json()
    assert body["valid"] is True and body["scopes"] == ["webcast:fetch", "user:info"]
    assert body["tiktok_user_id"]
    assert refresh(gateway.url, app, t["refresh_token"]).status_code == 200
    r = httpx.post(url, data={"refresh_token": t["refresh_token"]}, auth=app.auth)
    assert r.json()["valid"] is False
    assert_oauth_error(httpx.post(url, data={}, auth=app.auth), 400, "invalid_request")


# -- resource side -----------------------------------------------------------------------------


@spec("RFC 6750", "3")
@spec("RFC 6750", "3.1")
def test_userinfo_bearer_errors(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    url = f"{gateway.url}/tiktok/oauth/userinfo"
    r = httpx.get(url)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="livegate"'
    r = httpx.get(url, headers={"Authorization": "Bearer lg_at_nope"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    app = register(database, scope="webcast:fetch")
    t = tokens_for(gateway.url, sim.url, app, scope="webcast:fetch")
    r = httpx.get(url, headers={"Authorization": f"Bearer {t['access_token']}"})
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert r.json()["scope"] == "user:info"


# -- discovery ---------------------------------------------------------------------------------


@spec("RFC 8414", "3")
@spec("RFC 9207", "3")
def test_metadata(gateway: ServerThread) -> None:
    m = httpx.get(f"{gateway.url}/.well-known/oauth-authorization-server").json()
    assert m["issuer"] == gateway.url
    assert m["authorization_endpoint"] == f"{gateway.url}/tiktok/oauth/authorize"
    assert m["token_endpoint"] == f"{gateway.url}/tiktok/oauth/token"
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["authorization_response_iss_parameter_supported"] is True
    assert "webcast:fetch" in m["scopes_supported"]
    assert m["response_types_supported"] == ["code"]


def test_client_public_info(gateway: ServerThread, database: Database) -> None:
    app = register(database)
    r = httpx.get(f"{gateway.url}/tiktok/oauth/clients/{app.client_id}")
    info = r.json()
    assert info["client_id"] == app.client_id
    assert info["redirect_uris"] == [REDIRECT]
    assert "webcast:fetch" in info["supported_scopes"]
    assert "client_secret" not in info and "secret" not in r.text
    assert httpx.get(f"{gateway.url}/tiktok/oauth/clients/lgc_nope").status_code == 404
