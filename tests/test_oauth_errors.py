"""The authorization and token endpoints' refusals: the standard shape, the right status, a
description that says what to fix, and no leaked detail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import httpx
import pytest
from sqlalchemy import update

from livegate.db.engine import Database
from livegate.db.models import AuthorizationCode
from livegate.secrets import digest
from tests.flows import authorize_url, pkce_pair, query, token_request
from tests.oauth_helpers import (
    REDIRECT,
    assert_oauth_error,
    exchange,
    get_code,
    introspect,
    refresh,
    register,
    tokens_for,
)
from tests.servers import ServerThread

spec = pytest.mark.spec


# -- authorization endpoint ------------------------------------------------------------------


@spec("RFC 6749", "4.1.2.1")
@spec("RFC 9700", "4.1.1")
def test_unregistered_redirect_uri_is_never_redirected_to(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database)
    for bad in (
        "https://evil.example/cb",
        REDIRECT + "/extra",
        REDIRECT + "?x=1",
        REDIRECT.upper(),
    ):
        r = httpx.get(authorize_url(gateway.url, app.client_id, bad, "webcast:fetch"))
        assert r.status_code == 400
        assert "location" not in r.headers
        assert "invalid_request" in r.text


@spec("RFC 6749", "4.1.2.1")
def test_unknown_or_missing_client_gets_error_page(gateway: ServerThread) -> None:
    r = httpx.get(authorize_url(gateway.url, "lgc_nope", REDIRECT, "webcast:fetch"))
    assert r.status_code == 400 and "location" not in r.headers
    assert "invalid_client" in r.text
    r = httpx.get(f"{gateway.url}/tiktok/oauth/authorize?response_type=code")
    assert r.status_code == 400 and "invalid_client" in r.text


@spec("RFC 6749", "4.1.2.1")
@spec("RFC 9207", "2")
def test_errors_with_valid_redirect_are_redirected_with_state_and_iss(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database, scope="webcast:fetch")
    cases = [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "webcast:nope"}, "invalid_scope"),
        ({"scope": "webcast:chat"}, "invalid_scope"),  # known, but not registered for this client
        ({"code_challenge": pkce_pair()[1], "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": pkce_pair()[1]}, "invalid_request"),  # method would default to plain
    ]
    for extra, error in cases:
        params = {"scope": "webcast:fetch", **extra}
        url = authorize_url(gateway.url, app.client_id, REDIRECT, params.pop("scope"), **params)
        r = httpx.get(url)
        assert r.status_code == 302, (extra, r.text[:200])
        q = query(r.headers["location"])
        assert r.headers["location"].startswith(REDIRECT)
        assert q["error"] == error, (extra, q)
        assert q["state"]
        assert q["iss"] == gateway.url


@spec("RFC 9700", "2.1.1")
def test_public_client_must_send_pkce(gateway: ServerThread, database: Database) -> None:
    app = register(database, public=True)
    r = httpx.get(authorize_url(gateway.url, app.client_id, REDIRECT, "webcast:fetch"))
    assert r.status_code == 302
    assert query(r.headers["location"])["error"] == "invalid_request"


@spec("RFC 6749", "3.1")
def test_repeated_parameters_are_refused(gateway: ServerThread, database: Database) -> None:
    app = register(database)
    url = authorize_url(gateway.url, app.client_id, REDIRECT, "webcast:fetch") + "&scope=user:info"
    r = httpx.get(url)
    assert r.status_code in (302, 400)
    body = query(r.headers["location"])["error"] if r.status_code == 302 else r.text
    assert "invalid_request" in body


def test_scope_aliases_are_accepted(gateway: ServerThread, database: Database) -> None:
    app = register(database, scope="webcast:live_check webcast:fetch")
    r = httpx.get(authorize_url(gateway.url, app.client_id, REDIRECT, "webcast:live_check"))
    assert r.status_code == 200
    assert "Check who is live" in r.text


# -- token endpoint --------------------------------------------------------------------------


@spec("RFC 7636", "4.6")
def test_wrong_or_missing_pkce_verifier(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database, public=True)
    code, _ = get_code(gateway.url, sim.url, app, pkce=True)
    wrong, _ = pkce_pair()
    assert_oauth_error(exchange(gateway.url, app, code, wrong), 400, "invalid_grant")
    code2, _ = get_code(gateway.url, sim.url, app, pkce=True)
    assert_oauth_error(exchange(gateway.url, app, code2, None), 400, "invalid_request")


@spec("RFC 9700", "4.8.2")
def test_verifier_for_a_code_without_challenge_is_refused(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    verifier, _ = pkce_pair()
    body = assert_oauth_error(exchange(gateway.url, app, code, verifier), 400, "invalid_request")
    assert "code_challenge" in str(body["error_description"])


@spec("RFC 6749", "4.1.2")
@spec("RFC 6749", "10.5")
def test_code_reuse_fails_and_revokes_what_it_issued(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    first = exchange(gateway.url, app, code)
    assert first.status_code == 200
    tokens = first.json()
    assert introspect(gateway.url, app, tokens["access_token"])["active"] is True
    assert_oauth_error(exchange(gateway.url, app, code), 400, "invalid_grant")
    assert introspect(gateway.url, app, tokens["access_token"]) == {"active": False}
    assert introspect(gateway.url, app, tokens["refresh_token"]) == {"active": False}


@spec("RFC 6749", "4.1.2")
def test_expired_code(gateway: ServerThread, sim: ServerThread, database: Database) -> None:
    app = register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    with database.session() as s:
        s.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_digest == digest(code))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert_oauth_error(exchange(gateway.url, app, code), 400, "invalid_grant")


@spec("RFC 6749", "4.1.3")
def test_code_from_another_client_and_redirect_mismatch(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app, other = register(database), register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    assert_oauth_error(exchange(gateway.url, other, code), 400, "invalid_grant")
    code2, _ = get_code(gateway.url, sim.url, app)
    r = token_request(
        gateway.url,
        {
            "grant_type": "authorization_code",
            "code": code2,
            "redirect_uri": "http://127.0.0.1:9/other",
        },
        auth=app.auth,
    )
    assert_oauth_error(r, 400, "invalid_grant")


@spec("RFC 6749", "5.2")
def test_bad_client_secret(gateway: ServerThread, sim: ServerThread, database: Database) -> None:
    app = register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    r = token_request(gateway.url, data, auth=(app.client_id, "lg_cs_wrong"))
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic ")
    r = token_request(gateway.url, {**data, "client_id": app.client_id, "client_secret": "wrong"})
    assert_oauth_error(r, 401, "invalid_client")
    r = token_request(gateway.url, {**data, "client_id": app.client_id})  # confidential, no secret
    assert_oauth_error(r, 401, "invalid_client")


@spec("RFC 6749", "5.2")
def test_malformed_token_requests(gateway: ServerThread, database: Database) -> None:
    app = register(database)
    url = f"{gateway.url}/tiktok/oauth/token"
    assert_oauth_error(
        httpx.post(url, data={"grant_type": "password"}, auth=app.auth),
        400,
        "unsupported_grant_type",
    )
    assert_oauth_error(httpx.post(url, data={}, auth=app.auth), 400, "invalid_request")
    assert_oauth_error(
        httpx.post(
            url, data={"grant_type": "authorization_code", "redirect_uri": REDIRECT}, auth=app.auth
        ),
        400,
        "invalid_request",
    )
    # A JSON request gets the Euler envelope, even when its body cannot be read.
    for raw in (b"{not json", b"[1,2]"):
        r = httpx.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.headers["cache-control"] == "no-store", r.text
        body = r.json()
        assert body["code"] == 400 and body["data"] is None, body
        assert body["error"]["error"] == "invalid_request", body
    r = httpx.post(url, content=b"\x00\xff", headers={"content-type": "text/plain"})
    assert_oauth_error(r, 400, "invalid_request")
    r = httpx.get(url)
    assert r.status_code == 405


@pytest.mark.parametrize("bad", ["\x00", "a\x00b"])
def test_nul_characters_are_a_bad_request_everywhere(
    gateway: ServerThread, database: Database, bad: str
) -> None:
    """PostgreSQL refuses NUL in text: it must never reach a query (it gave a 500)."""
    app = register(database)
    r = httpx.get(
        f"{gateway.url}/tiktok/oauth/authorize", params={"response_type": "", "client_id": bad}
    )
    assert r.status_code == 400 and "Traceback" not in r.text
    r = httpx.get(
        f"{gateway.url}/tiktok/oauth/authorize",
        params={"response_type": "code", "client_id": app.client_id, "state": bad},
    )
    assert r.status_code in (302, 400) and "Traceback" not in r.text
    for path in ("token", "revoke", "introspect"):
        url = f"{gateway.url}/tiktok/oauth/{path}"
        form = {"grant_type": "refresh_token", "refresh_token": bad, "token": bad}
        assert_oauth_error(httpx.post(url, data=form, auth=app.auth), 400, "invalid_request")
        form = {"grant_type": "authorization_code", "client_id": bad, "code": "x", "token": "x"}
        r = httpx.post(url, data=form)
        assert r.status_code in (400, 401) and r.json()["error"] in (
            "invalid_request",
            "invalid_client",
        )
        r = httpx.post(url, data={"grant_type": "refresh_token"}, auth=(bad, "secret"))
        assert_oauth_error(r, 401, "invalid_client")


# -- issue 27 item 5: every refusal says what to fix -------------------------------------------


def described(body: Mapping[str, object], *words: str) -> str:
    """The error description, which must name each of `words`."""
    description = str(body.get("error_description") or "")
    for word in words:
        assert word in description, (word, body)
    return description


@spec("RFC 6749", "5.2")
def test_client_authentication_failures_say_what_is_wrong(
    gateway: ServerThread, database: Database
) -> None:
    app, public = register(database), register(database, public=True)
    url = f"{gateway.url}/tiktok/oauth/token"
    form = {"grant_type": "refresh_token", "refresh_token": "lg_rt_x"}
    r = httpx.post(url, data=form, auth=(app.client_id, "lg_cs_wrong"))
    described(assert_oauth_error(r, 401, "invalid_client"), "client_secret is wrong", app.client_id)
    assert "client_secret is wrong" in r.headers["www-authenticate"]
    r = httpx.post(url, data={**form, "client_id": app.client_id})
    described(assert_oauth_error(r, 401, "invalid_client"), "confidential", "client_secret")
    r = httpx.post(url, data={**form, "client_id": "lgc_nobody", "client_secret": "s"})
    body = r.json()
    assert r.status_code in (400, 401) and body["error"] == "invalid_client", body
    described(body, "No client", "'lgc_nobody'")
    r = httpx.post(url, data=form)
    described(assert_oauth_error(r, 401, "invalid_client"), "HTTP Basic", "client_id")
    r = httpx.post(url, data={**form, "client_id": public.client_id, "client_secret": "s"})
    described(assert_oauth_error(r, 401, "invalid_client"), "public", "client_id alone")
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/introspect",
        data={"token": "lg_at_x", "client_id": public.client_id},
    )
    described(assert_oauth_error(r, 401, "invalid_client"), "public", "confidential clients")


@spec("RFC 6749", "5.2")
def test_missing_or_unsupported_grant_type_is_named(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database)
    url = f"{gateway.url}/tiktok/oauth/token"
    body = assert_oauth_error(httpx.post(url, data={}, auth=app.auth), 400, "invalid_request")
    described(body, "'grant_type'", "authorization_code", "refresh_token")
    r = httpx.post(url, data={"grant_type": "password"}, auth=app.auth)
    body = assert_oauth_error(r, 400, "unsupported_grant_type")
    described(body, "'password'", "authorization_code")
    r = httpx.post(url, data={"grant_type": "refresh_token"}, auth=app.auth)
    described(assert_oauth_error(r, 400, "invalid_request"), "'refresh_token'")
    r = httpx.post(url, data={"grant_type": "authorization_code"}, auth=app.auth)
    described(assert_oauth_error(r, 400, "invalid_request"), "'code'")


@spec("RFC 9700", "4.14.2")
@spec("RFC 6749", "5.2")
def test_refused_refresh_tokens_say_why(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app, other = register(database), register(database)
    t1 = tokens_for(gateway.url, sim.url, app)
    # Another app learns only that the token is not for it, as for one that does not exist.
    other_body = assert_oauth_error(
        refresh(gateway.url, other, t1["refresh_token"]), 400, "invalid_grant"
    )
    unknown_body = assert_oauth_error(
        refresh(gateway.url, app, "lg_rt_unknown"), 400, "invalid_grant"
    )
    assert other_body == unknown_body
    described(other_body, "unknown", "another client")
    # A wider scope is named, and leaves the token as it was.
    r = token_request(
        gateway.url,
        {
            "grant_type": "refresh_token",
            "refresh_token": t1["refresh_token"],
            "scope": "webcast:chat",
        },
        auth=app.auth,
    )
    described(assert_oauth_error(r, 400, "invalid_scope"), "'webcast:chat'", "webcast:fetch")
    assert refresh(gateway.url, app, t1["refresh_token"]).status_code == 200
    # The rotated token comes back: its client is told what happened and what to do.
    body = assert_oauth_error(refresh(gateway.url, app, t1["refresh_token"]), 400, "invalid_grant")
    described(body, "already used", "revokes every token", "authorization again")


@spec("RFC 6749", "4.1.2")
@spec("RFC 6749", "5.2")
def test_refused_codes_say_why(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    app, other = register(database), register(database)
    code, _ = get_code(gateway.url, sim.url, app)
    body = assert_oauth_error(exchange(gateway.url, other, code), 400, "invalid_grant")
    described(body, "unknown", "another client")
    assert exchange(gateway.url, app, code).status_code == 200
    body = assert_oauth_error(exchange(gateway.url, app, code), 400, "invalid_grant")
    described(body, "already used", "revoked")


@spec("livegate", "errors: a JSON request gets the Euler envelope, its refusals included")
def test_unreadable_or_mistyped_json_gets_the_envelope_with_a_message(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database)
    url = f"{gateway.url}/tiktok/oauth/token"
    r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    body = r.json()
    assert r.status_code == 400 and body["code"] == 400 and body["data"] is None, body
    assert body["error"]["error"] == "invalid_request" and "not valid JSON" in body["message"]
    assert body["error"]["error_description"] == body["message"]
    sent = {"grant_type": "refresh_token", "refresh_token": 5, "client_id": app.client_id}
    body = httpx.post(url, json=sent).json()
    assert body["error"]["error_description"] is not None, body
    assert "'refresh_token'" in body["message"] and "string" in body["message"], body


@spec("RFC 6749", "3.3")
@spec("RFC 6749", "4.1.2.1")
def test_scope_errors_name_the_scope_and_what_the_client_may_ask_for(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database, scope="webcast:fetch user:info")
    for scope, named in (
        ("webcast:chat", "'webcast:chat'"),  # known, not registered for this client
        ("webcast:nope", "'webcast:nope'"),  # unknown
        ("", "'scope'"),  # missing: refused rather than widened to every registered scope
    ):
        r = httpx.get(authorize_url(gateway.url, app.client_id, REDIRECT, scope))
        assert r.status_code == 302, (scope, r.text[:300])
        q = query(r.headers["location"])
        assert q["error"] == "invalid_scope", (scope, q)
        described(q, named, "webcast:fetch user:info")


@spec("RFC 6749", "4.1.2.1")
def test_missing_or_unsupported_response_type_is_named(
    gateway: ServerThread, database: Database
) -> None:
    app = register(database)
    for response_type, error, named in (
        (None, "invalid_request", "Missing 'response_type'"),
        ("token", "unsupported_response_type", "'token'"),
    ):
        url = authorize_url(gateway.url, app.client_id, REDIRECT, "webcast:fetch")
        url = url.replace(
            "response_type=code", "" if response_type is None else "response_type=token"
        )
        r = httpx.get(url)
        assert r.status_code == 302, (response_type, r.text[:300])
        q = query(r.headers["location"])
        assert q["error"] == error, q
        described(q, named, "response_type=code")
    # No client to trust with a redirect: the page says what is missing.
    r = httpx.get(f"{gateway.url}/tiktok/oauth/authorize?response_type=code")
    assert r.status_code == 400 and "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert "invalid_client" in r.text and "client_id" in r.text
