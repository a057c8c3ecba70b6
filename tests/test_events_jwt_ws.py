"""`jwtKey` on `GET /webcast/events`: a browser token from `POST /webcast/jwt` opens the
creators it names (4403 for any other), acting as the user when it was issued with the user's
access token (an age-restricted room works), and holds at most its `max_sockets` (4429)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.events_helpers import chat_texts, closed_with, first_json, json_events, open_events
from tests.servers import ServerThread
from tests.webcast_helpers import User, add_comment, new_room


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def browser_token(gw_url: str, user: User, with_user: bool, **body: Any) -> str:
    headers = {"X-Api-Key": user.api_key}
    if with_user:
        headers["Authorization"] = f"Bearer {user.access_token}"
    r = httpx.post(f"{gw_url}/webcast/jwt", json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def test_a_users_browser_token_opens_its_creator_and_no_other(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    creator, other = uname("ja"), uname("jb")
    room_id = new_room(sim.url, creator, age_restricted=True)
    new_room(sim.url, other)
    token = browser_token(gateway.url, user, True, creators=[creator], max_sockets=2)
    with open_events(gateway.url, uniqueId=other, jwtKey=token) as ws:
        code, reason = closed_with(ws)
    assert code == 4403 and f"@{other}" in reason
    with open_events(gateway.url, uniqueId=f"@{creator}", jwtKey=token, format="json") as ws:
        assert first_json(ws)["messages"][0]["data"]["id_str"] == room_id
        add_comment(sim.url, room_id, uname("fan"), "via a browser token")
        assert chat_texts(json_events(ws, 1)) == ["via a browser token"]


def test_an_anonymous_browser_token_holds_at_most_its_sockets(
    gateway: ServerThread, sim: ServerThread, user: User
) -> None:
    creator = uname("jc")
    new_room(sim.url, creator)
    token = browser_token(gateway.url, user, False, creators=[creator], max_sockets=1)
    with open_events(gateway.url, uniqueId=creator, jwtKey=token, format="json") as one:
        assert first_json(one)["messages"][0]["type"] == "roomInfo"
        with open_events(gateway.url, uniqueId=creator, jwtKey=token) as two:
            code, reason = closed_with(two)
    assert code == 4429 and "jwt" in reason
