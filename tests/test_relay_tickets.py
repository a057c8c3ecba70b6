"""The WebSocket relay's tickets (webcast/tickets.py): sealed in the shared database, taken
once across gateway processes, expiring, refusing a forged or tampered ticket, and keeping
the session jar out of both the URL and a dump of the table."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from TikTokLive.proto import ProtoMessageFetchResult
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import RelayTicket, utcnow
from livegate.secrets import digest
from livegate.vault import Vault
from livegate.webcast.tickets import TicketStore
from tests.servers import ServerThread
from tests.test_relay_revocation import relays_a_comment
from tests.webcast_helpers import extra_gateway, new_room, new_user

spec = pytest.mark.spec
SINGLE_USE = ("livegate", "security: a relay ticket opens once, on any instance")
SEALED = ("livegate", "security: the session never leaves livegate, at rest or in a URL")


def uname(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def other(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A second gateway with its own engine on the same database, as another instance."""
    server = extra_gateway(gateway_settings)
    yield server
    server.stop()


def fetched_push_server(gw_url: str, token: str, room_id: str) -> tuple[str, str]:
    """The relay URL (with its query) a session-signed fetch through `gw_url` names."""
    r = httpx.get(
        f"{gw_url}/webcast/fetch",
        params={"room_id": room_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    result = ProtoMessageFetchResult().parse(r.content)
    base = gw_url.replace("http://", "ws://") + "/webcast/ws/"
    assert result.push_server.startswith(base)
    query = "&".join(f"{k}={v}" for k, v in result.route_params.items())
    return result.push_server, f"{query}&room_id={room_id}"


def on(server_url: str, push_server: str) -> str:
    """The same relay path on another gateway."""
    path = push_server.split("/webcast/ws/", 1)[1]
    return server_url.replace("http://", "ws://") + "/webcast/ws/" + path


def ticket_of(push_server: str) -> str:
    return push_server.split("/webcast/ws/", 1)[1].strip("/")


def refused(url: str) -> str:
    """The handshake-status of a refused relay handshake."""
    with pytest.raises(InvalidStatus) as info:
        ws_connect(url, subprotocols=["echo-protocol"], open_timeout=5)  # type: ignore[list-item]
    assert info.value.response.status_code == 200
    return str(info.value.response.headers["handshake-status"])


def test_ticket_ids_are_distinct_hex(database: Database) -> None:
    from livegate.webcast.tickets import TICKET_BYTES

    store = TicketStore(database, Vault([b"k" * 32]))  # sealing writes nothing
    ids = [store.seal("wss://up", 1, "d", {})[0] for _ in range(768)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 2 * TICKET_BYTES and int(i, 16) >= 0 for i in ids)


@spec(*SINGLE_USE)
def test_a_ticket_from_one_gateway_opens_on_another_and_only_once(
    gateway: ServerThread, other: ServerThread, sim: ServerThread, database: Database
) -> None:
    user = new_user(gateway.url, sim.url, database, uname("tk"))
    room_id = new_room(sim.url, uname("tks"))
    push, query = fetched_push_server(gateway.url, user.access_token, room_id)
    with ws_connect(f"{on(other.url, push)}?{query}", subprotocols=["echo-protocol"]) as ws:  # type: ignore[list-item]
        relays_a_comment(ws, sim.url, room_id)
    # Taken: neither instance opens it again.
    assert refused(f"{push}?{query}") == "417"
    assert refused(f"{on(other.url, push)}?{query}") == "417"
    with database.session() as db:
        assert db.get(RelayTicket, digest(ticket_of(push))) is None


@spec(*SINGLE_USE)
def test_an_expired_ticket_is_refused_and_gone(
    gateway: ServerThread, other: ServerThread, sim: ServerThread, database: Database
) -> None:
    user = new_user(gateway.url, sim.url, database, uname("te"))
    room_id = new_room(sim.url, uname("tes"))
    push, query = fetched_push_server(gateway.url, user.access_token, room_id)
    row_id = digest(ticket_of(push))
    with database.session() as db:
        row = db.get(RelayTicket, row_id)
        assert row is not None
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert refused(f"{on(other.url, push)}?{query}") == "417"
    with database.session() as db:
        assert db.get(RelayTicket, row_id) is None


@spec(*SINGLE_USE)
def test_a_forged_or_altered_ticket_is_refused(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    user = new_user(gateway.url, sim.url, database, uname("tf"))
    room_id = new_room(sim.url, uname("tfs"))
    push, query = fetched_push_server(gateway.url, user.access_token, room_id)
    ticket = ticket_of(push)
    altered = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
    assert refused(f"{push.replace(ticket, altered)}?{query}") == "417"
    assert refused(f"{push.replace(ticket, secrets.token_hex(32))}?{query}") == "417"
    assert refused(f"{push.replace(ticket, 'x' * 3000)}?{query}") == "417"


@spec(*SINGLE_USE)
def test_a_sealed_ticket_moved_onto_another_row_does_not_open(
    gateway_settings: Settings, database: Database
) -> None:
    store = TicketStore(database, Vault(gateway_settings.server_keys))
    first = store.issue("wss://push/a", 1, "a" * 64, {"sessionid": "one"})
    second = store.issue("wss://push/b", 2, "b" * 64, {"sessionid": "two"})
    with database.session() as db:
        a, b = db.get(RelayTicket, digest(first)), db.get(RelayTicket, digest(second))
        assert a is not None and b is not None
        a.sealed, b.sealed = b.sealed, a.sealed
    assert store.take(first) is None
    assert store.take(second) is None


@spec(*SEALED)
def test_the_session_jar_is_in_neither_the_ticket_nor_the_stored_row(
    gateway_settings: Settings, database: Database
) -> None:
    store = TicketStore(database, Vault(gateway_settings.server_keys))
    session_value = secrets.token_hex(16)
    jar = {"sessionid": session_value, "tt-target-idc": "useast5"}
    ticket = store.issue("wss://push/jar", 7, "d" * 64, jar)
    assert session_value not in ticket
    with database.session() as db:
        rows = db.execute(select(RelayTicket.id, RelayTicket.sealed)).all()
    dump = b"".join(row.id.encode() + row.sealed for row in rows)
    assert session_value.encode() not in dump
    assert ticket.encode() not in dump  # only its digest keys the row
    assert b"wss://push/jar" not in dump
    taken = store.take(ticket)
    assert taken is not None and taken.cookies == jar and taken.grant_id == 7
    assert session_value not in repr(taken)
    assert store.take(ticket) is None
