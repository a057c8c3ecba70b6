"""Revoking access closes the grant's open WebSocket relays (DESIGN.md, security model).

A relay is the WebSocket a fetch signed with the user's session points the client to
(`/webcast/ws/<ticket>/`, webcast/relay.py). A revocation made through the gateway that holds
the relay closes it at once; one made by another process on the same database, or a token
that expires, closes it within a few seconds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from TikTokLive.proto import ProtoMessageFetchResult, WebcastChatMessage, WebcastPushFrame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.webcast.relay import CLOSE_REVOKED
from tests.oauth_helpers import revoke
from tests.servers import ServerThread, free_port
from tests.webcast_helpers import add_comment, extra_gateway, new_room, new_user

spec = pytest.mark.spec
RELAYS_CLOSE = ("livegate", "security: revoking access closes the grant's open relays")


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def no_recheck(
    gateway_settings: Settings, database: Database
) -> Iterator[tuple[ServerThread, FastAPI]]:
    """A gateway that never looks for revocations made elsewhere: whatever closes its relays
    is its own revocation's notice."""
    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    app = create_app(settings, Database(settings.db_url))
    app.state.webcast.relays.every = 3600.0
    server = ServerThread(app, port=port).start()
    yield server, app
    server.stop()


def open_relay(gw_url: str, token: str, room_id: str) -> ClientConnection:
    r = httpx.get(
        f"{gw_url}/webcast/fetch",
        params={"room_id": room_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    result = ProtoMessageFetchResult().parse(r.content)
    assert result.push_server.startswith(gw_url.replace("http://", "ws://") + "/webcast/ws/")
    query = "&".join(f"{k}={v}" for k, v in result.route_params.items())
    url = f"{result.push_server}?{query}&room_id={room_id}"
    return ws_connect(url, subprotocols=[Subprotocol("echo-protocol")], open_timeout=5)


def relays_a_comment(ws: ClientConnection, sim_url: str, room_id: str) -> None:
    """Frames flow: a comment posted in the room arrives through the relay."""
    text = f"hello {secrets.token_hex(3)}"
    add_comment(sim_url, room_id, uname("fan"), text)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = WebcastPushFrame().parse(ws.recv(timeout=deadline - time.monotonic()))
        if frame.payload_type != "msg":
            continue
        result = ProtoMessageFetchResult().parse(frame.payload)
        chats = [
            WebcastChatMessage().parse(m.payload).content
            for m in result.messages
            if m.method == "WebcastChatMessage"
        ]
        if text in chats:
            return
    raise AssertionError("the comment never came through the relay")


def closed_within(ws: ClientConnection, seconds: float) -> tuple[int, str]:
    """The close code and reason the gateway sends, waiting at most `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            ws.recv(timeout=left)  # frames still in flight are skipped
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError(f"the relay was still open after {seconds} s")


@spec(*RELAYS_CLOSE)
def test_revoking_the_token_closes_its_open_relay_at_once(
    no_recheck: tuple[ServerThread, FastAPI], sim: ServerThread, database: Database
) -> None:
    server, _ = no_recheck
    user = new_user(server.url, sim.url, database, uname("rr"))
    room_id = new_room(sim.url, uname("rrs"))
    with open_relay(server.url, user.access_token, room_id) as ws:
        relays_a_comment(ws, sim.url, room_id)
        assert revoke(server.url, user.app, user.access_token, "access_token").status_code == 200
        code, reason = closed_within(ws, 3)
    assert code == CLOSE_REVOKED == 4401
    assert "no longer active" in reason


@spec(*RELAYS_CLOSE)
def test_revoking_the_refresh_token_closes_the_relays_of_its_access_tokens(
    no_recheck: tuple[ServerThread, FastAPI], sim: ServerThread, database: Database
) -> None:
    server, _ = no_recheck
    user = new_user(server.url, sim.url, database, uname("rf"))
    room_id = new_room(sim.url, uname("rfs"))
    with open_relay(server.url, user.access_token, room_id) as ws:
        relays_a_comment(ws, sim.url, room_id)
        assert revoke(server.url, user.app, user.refresh_token, "refresh_token").status_code == 200
        assert closed_within(ws, 3)[0] == CLOSE_REVOKED


@spec(*RELAYS_CLOSE)
def test_login_required_closes_the_grants_open_relays(
    no_recheck: tuple[ServerThread, FastAPI], sim: ServerThread, database: Database
) -> None:
    server, _ = no_recheck
    user = new_user(server.url, sim.url, database, uname("lr"))
    room_id = new_room(sim.url, uname("lrs"))
    with open_relay(server.url, user.access_token, room_id) as ws:
        relays_a_comment(ws, sim.url, room_id)
        # TikTok ends the session; the next call finds out and ends the grant.
        assert httpx.post(f"{sim.url}/_sim/sessions/{user.uid}/expire").status_code == 200
        r = httpx.get(
            f"{server.url}/webcast/fetch",
            params={"room_id": room_id},
            headers={"Authorization": f"Bearer {user.access_token}"},
            timeout=10,
        )
        assert r.status_code == 401 and r.json()["message"] == "login_required"
        assert closed_within(ws, 3)[0] == CLOSE_REVOKED


@spec(*RELAYS_CLOSE)
def test_a_relay_unrelated_to_the_revocation_stays_open(
    no_recheck: tuple[ServerThread, FastAPI], sim: ServerThread, database: Database
) -> None:
    server, _ = no_recheck
    kept = new_user(server.url, sim.url, database, uname("kp"))
    gone = new_user(server.url, sim.url, database, uname("gn"))
    room_id = new_room(sim.url, uname("kps"))
    with (
        open_relay(server.url, kept.access_token, room_id) as kept_ws,
        open_relay(server.url, gone.access_token, room_id) as gone_ws,
    ):
        assert revoke(server.url, gone.app, gone.access_token, "access_token").status_code == 200
        assert closed_within(gone_ws, 3)[0] == CLOSE_REVOKED
        relays_a_comment(kept_ws, sim.url, room_id)


@spec(*RELAYS_CLOSE)
def test_revocation_by_another_gateway_process_closes_the_relay_within_seconds(
    gateway: ServerThread, gateway_settings: Settings, sim: ServerThread, database: Database
) -> None:
    # The relay is on `gateway`; the revocation goes through a second gateway with its own
    # engine and sessions on the same database, as another process or instance would.
    other = extra_gateway(gateway_settings)
    try:
        user = new_user(gateway.url, sim.url, database, uname("xp"))
        room_id = new_room(sim.url, uname("xps"))
        with open_relay(gateway.url, user.access_token, room_id) as ws:
            relays_a_comment(ws, sim.url, room_id)
            assert revoke(other.url, user.app, user.access_token).status_code == 200
            code, reason = closed_within(ws, 5)
        assert code == CLOSE_REVOKED
        assert "no longer active" in reason
    finally:
        other.stop()


@spec(*RELAYS_CLOSE)
def test_a_relay_closes_when_its_access_token_expires(
    gateway_settings: Settings, sim: ServerThread, database: Database
) -> None:
    short = extra_gateway(gateway_settings, access_token_ttl=3)
    try:
        user = new_user(short.url, sim.url, database, uname("ex"))
        room_id = new_room(sim.url, uname("exs"))
        with open_relay(short.url, user.access_token, room_id) as ws:
            assert closed_within(ws, 10)[0] == CLOSE_REVOKED
    finally:
        short.stop()
