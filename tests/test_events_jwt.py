"""`POST /webcast/jwt`: browser tokens for the event stream. Issued to an app's backend (API
key, optionally a user's access token), signed with a key derived from the server key,
bounded in life, naming creators and sockets, carrying no credential; verified by any
instance (`verify_events_jwt`) and opened into the caller the stream serves."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any

import httpx
import pytest

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.errors import LivegateError
from livegate.vault import Vault
from livegate.webcast.browser_tokens import BrowserTokens
from livegate.webcast.jwt import EventsJwtError, issue_events_jwt, verify_events_jwt
from tests.events_helpers import (
    chat_texts,
    closed_with,
    first_json,
    json_events,
    open_events,
    sim_room,
)
from tests.oauth_helpers import revoke
from tests.servers import ServerThread
from tests.webcast_helpers import User, add_comment, new_room, new_user


def payload(token: str) -> dict[str, Any]:
    """What anyone holding the token reads in it (no key needed)."""
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def ask(gw: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return gw.post("/webcast/jwt", json=body, headers=headers)


def tokens(settings: Settings, database: Database) -> BrowserTokens:
    return BrowserTokens(settings, database, Vault(settings.server_keys))


def test_api_key_alone_gets_an_anonymous_token(
    gw: httpx.Client, user: User, gateway_settings: Settings
) -> None:
    r = ask(gw, {"creators": ["@Alice", "bob", "alice"]}, **{"X-Api-Key": user.api_key})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["code"] == 200 and answer["acts_as_user"] is False
    assert answer["creators"] == ["alice", "bob"] and answer["max_sockets"] == 1
    assert answer["expires_in"] == 60  # the default: a minute to open
    assert abs(answer["expires_at"] - (time.time() + 60)) < 30
    claims = verify_events_jwt(gateway_settings, answer["token"])
    assert claims.creators == ("alice", "bob") and claims.grants("@ALICE")
    assert not claims.grants("carol") and claims.grant_id is None
    assert claims.expires_at == answer["expires_at"]
    body = payload(answer["token"])
    assert set(body) == {"aud", "iat", "exp", "jti", "cr", "ms", "key"}
    assert user.api_key not in answer["token"] and "lg_ak_" not in json.dumps(body)


def test_api_key_and_user_token_act_as_the_user(
    gw: httpx.Client, user: User, gateway_settings: Settings, database: Database
) -> None:
    headers = {"X-Api-Key": user.api_key, "Authorization": f"Bearer {user.access_token}"}
    r = ask(gw, {"creators": ["alice"], "max_sockets": 3, "expires_in": 600}, **headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["acts_as_user"] is True and answer["max_sockets"] == 3
    assert 590 <= answer["expires_in"] <= 600
    body = payload(answer["token"])
    # The grant by id; no access token, API key or cookie, not even their digests' prefixes.
    text = json.dumps(body)
    for secret in (user.access_token, user.api_key, "lg_at_", "lg_ak_", "sessionid"):
        assert secret not in text and secret not in answer["token"]
    claims = verify_events_jwt(gateway_settings, answer["token"])
    assert claims.grant_id == body["grant"] and claims.max_sockets == 3
    # The event stream turns it back into the user, with the user's TikTok session.
    principal = asyncio.run(tokens(gateway_settings, database).principal(claims))
    assert principal.caller is not None and principal.caller.grant_id == claims.grant_id
    assert principal.has_session and principal.api_key is not None


def test_x_oauth_token_works_too(gw: httpx.Client, user: User) -> None:
    headers = {"X-Api-Key": user.api_key, "x-oauth-token": user.access_token}
    r = ask(gw, {"creators": ["alice"]}, **headers)
    assert r.status_code == 200 and r.json()["acts_as_user"] is True


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"X-Api-Key": "lg_ak_nope"}, 401, "invalid_api_key"),
        ({"X-Api-Key": "nonsense"}, 401, "invalid_api_key"),
        ({}, 401, "missing_credentials"),
    ],
)
def test_bad_or_missing_key_is_401(
    gw: httpx.Client, headers: dict[str, str], status: int, error: str
) -> None:
    r = ask(gw, {"creators": ["alice"]}, **headers)
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert set(r.json()) >= {"code", "message", "error"} and r.json()["code"] == status


def test_a_token_without_the_apps_key_is_refused(gw: httpx.Client, user: User) -> None:
    r = ask(gw, {"creators": ["alice"]}, Authorization=f"Bearer {user.access_token}")
    assert r.status_code == 401 and r.json()["error"] == "missing_api_key", r.text
    assert "X-Api-Key" in r.json()["message"]


def test_another_apps_key_beside_the_token_is_refused(
    gw: httpx.Client, user: User, gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    other = new_user(gateway.url, sim.url, database, "jwtother")
    headers = {"X-Api-Key": other.api_key, "Authorization": f"Bearer {user.access_token}"}
    r = ask(gw, {"creators": ["alice"]}, **headers)
    assert r.status_code == 403 and r.json()["error"] == "api_key_mismatch"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"creators": []},
        {"creators": [""]},
        {"creators": ["@"]},
        {"creators": ["not a name!"]},
        {"creators": [f"c{i}" for i in range(21)]},
        {"creators": "alice"},
        {"creators": ["alice"], "max_sockets": 0},
        {"creators": ["alice"], "max_sockets": 51},
        {"creators": ["alice"], "expires_in": 0},
        {"creators": ["alice"], "expires_in": 3601},
    ],
)
def test_bad_bodies_are_400(gw: httpx.Client, user: User, body: dict[str, Any]) -> None:
    r = ask(gw, body, **{"X-Api-Key": user.api_key})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["message"]


def test_lifetime_is_at_most_an_hour(
    gw: httpx.Client, user: User, gateway_settings: Settings
) -> None:
    r = ask(gw, {"creators": ["alice"], "expires_in": 3600}, **{"X-Api-Key": user.api_key})
    claims = verify_events_jwt(gateway_settings, r.json()["token"])
    assert claims.expires_at - claims.issued_at == 3600
    # Asked directly for more, the issuer caps it.
    _, capped = issue_events_jwt(
        gateway_settings, creators=["a"], max_sockets=1, api_key_id=1, ttl=86400
    )
    assert capped.expires_at - capped.issued_at == 3600


def test_expired_foreign_tampered_and_garbage_tokens_are_refused(
    gateway_settings: Settings,
) -> None:
    past = int(time.time()) - 120
    expired, _ = issue_events_jwt(
        gateway_settings, creators=["a"], max_sockets=1, api_key_id=1, now=past
    )
    with pytest.raises(EventsJwtError, match="expired"):
        verify_events_jwt(gateway_settings, expired)
    foreign, _ = issue_events_jwt(
        b"another livegate's server key", creators=["a"], max_sockets=1, api_key_id=1
    )
    with pytest.raises(EventsJwtError):
        verify_events_jwt(gateway_settings, foreign)
    good, _ = issue_events_jwt(gateway_settings, creators=["a"], max_sockets=1, api_key_id=1)
    head, _, sig = good.split(".")
    claims = payload(good)
    claims["cr"] = ["everyone"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(EventsJwtError, match="signature"):
        verify_events_jwt(gateway_settings, f"{head}.{forged}.{sig}")
    for junk in ("", "abc", "a.b.c", good + "x", "x" * 5000):
        with pytest.raises(EventsJwtError):
            verify_events_jwt(gateway_settings, junk)


def test_an_older_server_key_still_verifies_after_rotation() -> None:
    old, new = b"old server key " * 3, b"new server key " * 3
    token, _ = issue_events_jwt(old, creators=["a"], max_sockets=2, api_key_id=7)
    assert verify_events_jwt([new, old], token).max_sockets == 2
    with pytest.raises(EventsJwtError):
        verify_events_jwt([new], token)


def test_revoking_the_grant_stops_its_tokens(
    gateway: ServerThread,
    sim: ServerThread,
    gateway_settings: Settings,
    database: Database,
    gw: httpx.Client,
) -> None:
    u = new_user(gateway.url, sim.url, database, "jwtrevoked")
    headers = {"X-Api-Key": u.api_key, "Authorization": f"Bearer {u.access_token}"}
    token = ask(gw, {"creators": ["alice"]}, **headers).json()["token"]
    claims = verify_events_jwt(gateway_settings, token)
    service = tokens(gateway_settings, database)
    assert asyncio.run(service.principal(claims)).has_session
    assert revoke(gateway.url, u.app, u.refresh_token, "refresh_token").status_code == 200
    with pytest.raises(LivegateError) as refused:
        asyncio.run(service.principal(claims))
    assert refused.value.status == 401 and refused.value.error == "invalid_token"


# -- jwtKey on GET /webcast/events ------------------------------------------------------------


def jwt_for(gw: httpx.Client, u: User, creators: list[str], as_user: bool, **body: Any) -> str:
    headers = {"X-Api-Key": u.api_key}
    if as_user:
        headers["Authorization"] = f"Bearer {u.access_token}"
    r = ask(gw, {"creators": creators, **body}, **headers)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def test_a_user_jwt_opens_its_creator_with_the_users_session(
    gw: httpx.Client, gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = f"jw{secrets.token_hex(4)}"
    room_id = new_room(sim.url, streamer, age_restricted=True)
    token = jwt_for(gw, user, [f"@{streamer.upper()}"], as_user=True)
    with open_events(gateway.url, uniqueId=streamer, jwtKey=token, format="json") as ws:
        assert first_json(ws)["messages"][0]["data"]["id_str"] == room_id
        add_comment(sim.url, room_id, "jwtfan", "hello browser")
        assert chat_texts(json_events(ws, 1)) == ["hello browser"]
    [connect] = [e for e in sim_room(sim.url, room_id)["ws_log"] if e["type"] == "connect"]
    assert connect["with_session"] is True
    # Anonymous (API key alone): the age-restricted room does not open.
    anonymous = jwt_for(gw, user, [streamer], as_user=False)
    with open_events(gateway.url, uniqueId=streamer, jwtKey=anonymous) as ws:
        assert closed_with(ws)[0] == 4557


def test_an_anonymous_jwt_streams_a_public_room(
    gw: httpx.Client, gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = f"jp{secrets.token_hex(4)}"
    room_id = new_room(sim.url, streamer)
    token = jwt_for(gw, user, [streamer], as_user=False)
    with open_events(gateway.url, uniqueId=streamer, jwtKey=token, format="json") as ws:
        first_json(ws)
        add_comment(sim.url, room_id, "jwtfan", "hi anon")
        assert chat_texts(json_events(ws, 1)) == ["hi anon"]


def test_a_jwt_for_creator_a_cannot_open_b(
    gw: httpx.Client, gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    a, b = f"ja{secrets.token_hex(4)}", f"jb{secrets.token_hex(4)}"
    new_room(sim.url, a)
    new_room(sim.url, b)
    token = jwt_for(gw, user, [a], as_user=True)
    with open_events(gateway.url, uniqueId=b, jwtKey=token) as ws:
        code, reason = closed_with(ws)
    assert code == 4403 and b in reason


def test_invalid_expired_or_foreign_jwts_close_with_4401(
    gateway: ServerThread, sim: ServerThread, gateway_settings: Settings, user: User
) -> None:
    streamer = f"jx{secrets.token_hex(4)}"
    new_room(sim.url, streamer)
    past = int(time.time()) - 120
    expired, _ = issue_events_jwt(
        gateway_settings, creators=[streamer], max_sockets=1, api_key_id=1, now=past
    )
    foreign, _ = issue_events_jwt(
        b"someone else's key", creators=[streamer], max_sockets=1, api_key_id=1
    )
    for token in (expired, foreign, "x" * 3000):
        with open_events(gateway.url, uniqueId=streamer, jwtKey=token) as ws:
            code, reason = closed_with(ws)
        assert code == (4400 if len(token) > 2048 else 4401), (code, reason)
    with open_events(gateway.url, uniqueId=streamer, jwtKey=expired) as ws:
        assert "expired" in closed_with(ws)[1]


def test_a_jwt_holds_at_most_its_sockets(
    gw: httpx.Client, gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    streamer = f"jm{secrets.token_hex(4)}"
    new_room(sim.url, streamer)
    token = jwt_for(gw, user, [streamer], as_user=False, max_sockets=2)
    query = {"uniqueId": streamer, "jwtKey": token, "format": "json"}
    held = [open_events(gateway.url, **query) for _ in range(2)]
    try:
        for ws in held:
            first_json(ws)
        with open_events(gateway.url, **query) as third:
            assert closed_with(third)[0] == 4429
    finally:
        for ws in held:
            ws.close()


def test_revoking_the_grant_closes_jwt_streams_and_refuses_new_ones(
    gw: httpx.Client, gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    u = new_user(gateway.url, sim.url, database, f"jr{secrets.token_hex(4)}")
    streamer = f"jq{secrets.token_hex(4)}"
    new_room(sim.url, streamer)
    token = jwt_for(gw, u, [streamer], as_user=True, max_sockets=5)
    query = {"uniqueId": streamer, "jwtKey": token, "format": "json"}
    with open_events(gateway.url, **query) as ws:
        first_json(ws)
        assert revoke(gateway.url, u.app, u.refresh_token, "refresh_token").status_code == 200
        assert closed_with(ws, timeout=10)[0] == 4401
    with open_events(gateway.url, **query) as ws:
        assert closed_with(ws)[0] == 4401
