"""Shared set-up for the webcast API tests: rooms, faults, API keys, extra gateways."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from livegate.apikeys import create_api_key
from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.models import OAuthClient
from tests.oauth_helpers import ALL, App, register, tokens_for
from tests.servers import ServerThread, free_port


@dataclass
class User:
    app: App
    unique_id: str
    uid: str
    access_token: str
    refresh_token: str
    api_key: str  # an API key of the same app


def sim_uid(sim_url: str, unique_id: str) -> str:
    r = httpx.post(f"{sim_url}/_sim/accounts", json={"unique_id": unique_id}, timeout=10)
    r.raise_for_status()
    return str(r.json()["uid"])


def new_room(sim_url: str, unique_id: str, **kw: Any) -> str:
    r = httpx.post(f"{sim_url}/_sim/rooms", json={"unique_id": unique_id, **kw}, timeout=10)
    r.raise_for_status()
    return str(r.json()["room_id"])


def add_comment(sim_url: str, room_id: str, unique_id: str, text: str) -> None:
    r = httpx.post(
        f"{sim_url}/_sim/rooms/{room_id}/comments",
        json={"unique_id": unique_id, "text": text},
        timeout=10,
    )
    r.raise_for_status()


def room_state(sim_url: str, room_id: str) -> dict[str, Any]:
    r = httpx.get(f"{sim_url}/_sim/rooms/{room_id}", timeout=10)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


@contextlib.contextmanager
def fault(sim_url: str, **spec: Any) -> Iterator[None]:
    r = httpx.post(f"{sim_url}/_sim/faults", json=spec, timeout=10)
    r.raise_for_status()
    try:
        yield
    finally:
        httpx.delete(f"{sim_url}/_sim/faults", timeout=10).raise_for_status()


def client_pk(database: Database, client_id: str) -> int:
    with database.session() as s:
        pk = s.scalar(select(OAuthClient.id).where(OAuthClient.client_id == client_id))
    assert pk is not None
    return int(pk)


def api_key_for(database: Database, app: App | None) -> str:
    with database.session() as s:
        pk = client_pk(database, app.client_id) if app else None
        key, _ = create_api_key(s, name="test", client_pk=pk)
    return key


def new_user(
    gw_url: str, sim_url: str, database: Database, unique_id: str, scope: str = ALL
) -> User:
    app = register(database, scope=scope)
    tok = tokens_for(gw_url, sim_url, app, scope=scope, unique_id=unique_id)
    return User(
        app=app,
        unique_id=unique_id,
        uid=sim_uid(sim_url, unique_id),
        access_token=tok["access_token"],
        refresh_token=tok["refresh_token"],
        api_key=api_key_for(database, app),
    )


def extra_gateway(base: Settings, **overrides: Any) -> ServerThread:
    """Another gateway on a free port over the same database, with its own settings."""
    port = free_port()
    settings = base.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}", **overrides}
    )
    database = Database(settings.db_url)
    return ServerThread(create_app(settings, database), port=port).start()
