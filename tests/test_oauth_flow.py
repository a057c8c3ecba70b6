"""The whole authorization-code flow, driven by Authlib's httpx OAuth client."""

from __future__ import annotations

import secrets

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from livegate.db.engine import Database
from livegate.oauth.clients import NewClient, create_client
from tests.flows import pkce_pair, query, sign_in
from tests.servers import ServerThread

REDIRECT = "http://127.0.0.1:9/callback"
spec = pytest.mark.spec


def make_client(
    database: Database,
    public: bool = False,
    scope: str = "webcast:fetch user:info webcast:live_check",
) -> NewClient:
    with database.session() as session:
        return create_client(
            session, name="Test App", redirect_uris=[REDIRECT], scope=scope, public=public
        )


def uid() -> str:
    return "user" + secrets.token_hex(4)


@spec("RFC 6749", "4.1")
@spec("RFC 9207", "2")
def test_confidential_client_full_flow(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    new = make_client(database)
    oauth = OAuth2Client(
        new.row.client_id,
        new.client_secret,
        scope="webcast:fetch user:info",
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="client_secret_basic",
    )
    url, state = oauth.create_authorization_url(f"{gateway.url}/tiktok/oauth/authorize")
    name = uid()
    redirect = sign_in(gateway.url, sim.url, url, name)
    params = query(redirect)
    assert redirect.startswith(REDIRECT)
    assert params["state"] == state
    assert params["iss"] == gateway.url
    assert params["code"].startswith("lg_ac_")

    token = oauth.fetch_token(f"{gateway.url}/tiktok/oauth/token", authorization_response=redirect)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["access_token"].startswith("lg_at_")
    assert token["refresh_token"].startswith("lg_rt_")
    assert token["scope"] == "webcast:fetch user:info"
    assert 30 * 24 * 3600 - 60 < token["refresh_expires_in"] <= 30 * 24 * 3600

    info = httpx.get(
        f"{gateway.url}/tiktok/oauth/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert info.status_code == 200
    assert info.json()["uniqueId"] == name
    # The SDKs' header works the same.
    info2 = httpx.get(
        f"{gateway.url}/tiktok/oauth/userinfo", headers={"x-oauth-token": token["access_token"]}
    )
    assert info2.json()["uid"] == info.json()["uid"]


@spec("RFC 7636", "4.4")
@spec("RFC 7636", "4.6")
def test_public_client_with_pkce(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    new = make_client(database, public=True)
    assert new.client_secret is None
    oauth = OAuth2Client(
        new.row.client_id,
        scope="webcast:fetch",
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="none",
        code_challenge_method="S256",
    )
    verifier, _ = pkce_pair()
    url, _ = oauth.create_authorization_url(
        f"{gateway.url}/tiktok/oauth/authorize", code_verifier=verifier
    )
    redirect = sign_in(gateway.url, sim.url, url, uid())
    token = oauth.fetch_token(
        f"{gateway.url}/tiktok/oauth/token", authorization_response=redirect, code_verifier=verifier
    )
    assert token["access_token"].startswith("lg_at_")
    assert token["scope"] == "webcast:fetch"
