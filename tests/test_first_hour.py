"""What a new user meets in the first hour (issue 27): the webcast API's answer for an
account that exists but is not LIVE, the demo's sample app pages, the gateway's root page."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from livegate.db.engine import Database
from tests.servers import ServerThread
from tests.webcast_helpers import User, new_room, new_user, sim_uid


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def viewer(gateway: ServerThread, sim: ServerThread, database: Database) -> User:
    return new_user(gateway.url, sim.url, database, uname("fh"))


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


def test_existing_account_that_is_not_live_is_user_offline(
    gateway: ServerThread, sim: ServerThread, viewer: User
) -> None:
    # TikTok's api-live/user/room says "user_not_found" for an account that has never gone
    # LIVE; the README promises user_offline for it, and user_not_found only for no account.
    never_live = uname("quiet")
    sim_uid(sim.url, never_live)
    auth = {"Authorization": f"Bearer {viewer.access_token}"}
    with httpx.Client(base_url=gateway.url, headers=auth, timeout=15) as gw:
        r = gw.get("/webcast/fetch", params={"unique_id": never_live})
        assert error_of(r, 404)["error"] == "user_offline"
        r = gw.get("/webcast/room_id", params={"unique_id": never_live})
        body = error_of(r, 200)
        assert body["is_live"] is False and body["live_state"] == "offline"
        assert body["room_id"] is None
        r = gw.post("/webcast/bulk_live_check", json={"unique_ids": [never_live]})
        assert error_of(r, 200) == {never_live: False}

        ghost = uname("ghost")
        r = gw.get("/webcast/fetch", params={"unique_id": ghost})
        assert error_of(r, 404)["error"] == "user_not_found"
        r = gw.get("/webcast/room_id", params={"unique_id": ghost})
        assert error_of(r, 404)["error"] == "user_not_found"

        # An ended LIVE is offline too, and a live one still resolves to its room.
        ended = uname("ended")
        room_id = new_room(sim.url, ended)
        httpx.delete(f"{sim.url}/_sim/rooms/{room_id}").raise_for_status()
        r = gw.get("/webcast/fetch", params={"unique_id": ended})
        assert error_of(r, 404)["error"] == "user_offline"
        live = uname("live")
        live_room = new_room(sim.url, live)
        body = error_of(gw.get("/webcast/room_id", params={"unique_id": live}), 200)
        assert body["is_live"] is True and body["room_id"] == live_room
