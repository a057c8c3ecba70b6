"""The webcast API over real HTTP: auth shapes, scopes, routes, upstream failures. Rate limits
and usage: test_webcast_usage.py; revocation: test_webcast_revocation.py; the OpenAPI
document: test_openapi.py."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from TikTokLive.proto import ProtoMessageFetchResult, WebcastChatMessage, WebcastPushFrame
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from livegate.app import create_app
from livegate.config import Settings
from livegate.db.engine import Database
from livegate.webcast.routing import WebcastRoute
from tests.oauth_helpers import register, revoke, tokens_for
from tests.servers import ServerThread, free_port
from tests.webcast_helpers import (
    User,
    add_comment,
    api_key_for,
    extra_gateway,
    fault,
    new_room,
    new_user,
    room_state,
)


def uname(prefix: str = "wc") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def fast(gateway_settings: Settings) -> Iterator[ServerThread]:
    server = extra_gateway(gateway_settings, upstream_timeout=1.0)
    yield server
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chats(body: bytes) -> list[str]:
    result = ProtoMessageFetchResult().parse(body)
    return [
        WebcastChatMessage().parse(m.payload).content
        for m in result.messages
        if m.method == "WebcastChatMessage"
    ]


def assert_error(r: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    if error:
        assert body.get("error") == error, body
    return body


# -- authentication -------------------------------------------------------------------------


def test_no_credentials_is_401_with_bare_challenge(gw: httpx.Client, room: tuple[str, str]) -> None:
    r = gw.get("/webcast/fetch", params={"room_id": room[0]})
    body = assert_error(r, 401, "missing_credentials")
    assert "API key" in body["message"]
    assert r.headers["www-authenticate"] == 'Bearer realm="livegate"'


@pytest.mark.parametrize("token", ["lg_at_" + "x" * 40, "not-a-token"])
def test_unknown_token_is_401_invalid_token(gw: httpx.Client, token: str) -> None:
    for headers in (bearer(token), {"x-oauth-token": token}):
        r = gw.get("/webcast/rate_limits", headers=headers)
        assert_error(r, 401, "invalid_token")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_unknown_api_key_is_401(gw: httpx.Client) -> None:
    r = gw.get("/webcast/rate_limits", headers={"X-Api-Key": "lg_ak_nope"})
    assert_error(r, 401, "invalid_api_key")


def test_what_no_route_takes_answers_in_the_webcast_shape(
    gw: httpx.Client, user: User, room: tuple[str, str]
) -> None:
    assert_error(gw.get("/webcast/nope"), 404)
    r = gw.delete("/webcast/fetch", headers=bearer(user.access_token))
    assert_error(r, 405)
    assert "GET" in r.headers["allow"]
    fetched = gw.get(
        "/webcast/fetch", params={"room_id": room[0]}, headers=bearer(user.access_token)
    )
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/x-protobuf"
    assert int(fetched.headers["content-length"]) == len(fetched.content) > 0
    assert fetched.headers["cache-control"] == "no-store"
    assert fetched.headers["x-room-id"] == room[0]
    for r in (fetched, gw.get("/webcast/nope")):  # from the one SecurityHeaders middleware
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


@pytest.fixture(scope="module")
def broken(gateway_settings: Settings) -> Iterator[ServerThread]:
    """The gateway plus a webcast route that fails as a bug would."""

    async def fail() -> None:
        raise RuntimeError("secret detail")

    port = free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    app = create_app(settings, Database(settings.db_url))
    app.router.add_api_route("/webcast/test-broken", fail, route_class_override=WebcastRoute)
    server = ServerThread(app, port=port).start()
    yield server
    server.stop()


def test_a_failure_in_a_webcast_route_is_a_500_without_a_traceback(
    broken: ServerThread, log_buffer: io.StringIO
) -> None:
    r = httpx.get(broken.url + "/webcast/test-broken")
    body = assert_error(r, 500, "server_error")
    assert "secret detail" not in r.text and "Traceback" not in r.text
    assert body["message"] == "Internal error."
    assert r.headers["x-frame-options"] == "DENY"
    assert "webcast GET /webcast/test-broken failed" in log_buffer.getvalue()


ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("webcast:fetch", "GET", "/webcast/fetch?room_id=1", None),
    ("webcast:fetch", "POST", "/webcast/fetch", {"unique_id": "someone"}),
    ("webcast:fetch", "GET", "/webcast/rooms/1/connect", None),
    ("webcast:fetch", "GET", "/webcast/room_id?unique_id=someone", None),
    ("webcast:fetch", "GET", "/webcast/room_info?room_id=1", None),
    ("webcast:fetch", "GET", "/webcast/rooms/1/room_info", None),
    ("webcast:bulk_live_check", "POST", "/webcast/bulk_live_check", {"unique_ids": ["a"]}),
    ("webcast:rankings", "GET", "/webcast/rankings?region=US&rank_type=DAILY_RANK", None),
    ("webcast:rankings", "POST", "/webcast/rankings", {"region": "US"}),
    ("webcast:chat", "POST", "/webcast/chat", {"content": "hi", "target_room_id": "1"}),
    ("webcast:chat", "POST", "/webcast/rooms/1/chat", {"content": "hi"}),
]


@pytest.fixture(scope="module")
def info_only_token(gateway: ServerThread, sim: ServerThread, database: Database) -> str:
    app = register(database, scope="user:info")
    token: str = tokens_for(gateway.url, sim.url, app, scope="user:info")["access_token"]
    return token


@pytest.mark.parametrize(("scope", "method", "path", "body"), ROUTES)
def test_every_route_refuses_a_token_without_its_scope(
    gw: httpx.Client,
    info_only_token: str,
    scope: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    r = gw.request(method, path, json=body, headers={"x-oauth-token": info_only_token})
    data = assert_error(r, 403, "insufficient_scope")
    assert data["scope"] == scope and scope in data["message"]
    assert f'scope="{scope}"' in r.headers["www-authenticate"]


def test_token_and_cookie_header_together_are_refused(
    gw: httpx.Client, user: User, room: tuple[str, str]
) -> None:
    r = gw.get(
        "/webcast/fetch",
        params={"room_id": room[0]},
        headers={**bearer(user.access_token), "x-cookie-header": "sessionid=abc"},
    )
    assert_error(r, 400, "invalid_request")


def test_api_key_of_another_app_is_refused_beside_a_token(
    gw: httpx.Client, user: User, database: Database, room: tuple[str, str]
) -> None:
    other = api_key_for(database, register(database))
    r = gw.get(
        "/webcast/fetch",
        params={"room_id": room[0]},
        headers={**bearer(user.access_token), "X-Api-Key": other},
    )
    assert_error(r, 403, "api_key_mismatch")
    r = gw.get(
        "/webcast/fetch",
        params={"room_id": room[0]},
        headers={**bearer(user.access_token), "X-Api-Key": user.api_key},
    )
    assert r.status_code == 200, r.text


# -- fetch / connect ------------------------------------------------------------------------


def test_anonymous_fetch_with_api_key_passes_push_server_through(
    gw: httpx.Client, user: User, room: tuple[str, str], sim: ServerThread
) -> None:
    for kwargs in (
        {"headers": {"X-Api-Key": user.api_key}},
        {"params": {"apiKey": user.api_key}},
    ):
        params = {"client": "ttlive-python", "room_id": room[0], "client_enter": "true"}
        params.update(kwargs.pop("params", {}))
        r = gw.get("/webcast/fetch", params=params, **kwargs)  # type: ignore[arg-type]  # httpx overloads vs **kwargs
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/x-protobuf"
        assert r.headers["x-room-id"] == room[0]
        assert "ttwid=" in r.headers["x-set-tt-cookie"]
        result = ProtoMessageFetchResult().parse(r.content)
        assert result.push_server.startswith(sim.url.replace("http://", "ws://"))
        assert result.route_params and result.cursor
        assert "first!" in chats(r.content)


def test_api_key_caller_signs_the_fetch_with_its_own_session_id(
    gw: httpx.Client, user: User, room: tuple[str, str], sim: ServerThread
) -> None:
    jar = httpx.post(f"{sim.url}/_sim/sessions", json={"unique_id": uname("own")}).json()
    sessionid, idc = jar["cookies"]["sessionid"], jar["cookies"]["tt-target-idc"]
    httpx.delete(f"{sim.url}/_sim/requests")
    # TikTokLive 7.0.1's form: the caller's own session in the query, beside its API key.
    params = {"room_id": room[0], "session_id": sessionid, "tt_target_idc": idc}
    r = gw.get("/webcast/fetch", params=params, headers={"X-Api-Key": user.api_key})
    assert r.status_code == 200, r.text
    log = httpx.get(f"{sim.url}/_sim/requests", params={"path": "im/fetch"}).json()
    assert log[-1]["query"]["user_is_login"] == "true"
    assert {"sessionid", "tt-target-idc"} <= set(log[-1]["cookie_names"])
    # A value that would add a cookie of its own to the upstream Cookie header is refused.
    for bad in ({"session_id": sessionid + "; sid_tt=x"}, {"tt_target_idc": "a,b"}):
        r = gw.get("/webcast/fetch", params={**params, **bad}, headers={"X-Api-Key": user.api_key})
        assert_error(r, 400, "invalid_request")
    assert len(httpx.get(f"{sim.url}/_sim/requests", params={"path": "im/fetch"}).json()) == 1


def test_fetch_with_token_uses_the_session_and_proxies_the_websocket(
    gw: httpx.Client, gateway: ServerThread, user: User, sim: ServerThread
) -> None:
    streamer = uname("ws")
    room_id = new_room(sim.url, streamer)
    httpx.delete(f"{sim.url}/_sim/requests")
    r = gw.get("/webcast/fetch", params={"room_id": room_id}, headers=bearer(user.access_token))
    assert r.status_code == 200, r.text
    # The session signed the upstream fetch, and never comes back to the client.
    log = httpx.get(f"{sim.url}/_sim/requests", params={"path": "im/fetch"}).json()
    assert "sessionid" in log[-1]["cookie_names"]
    cookie = r.headers["x-set-tt-cookie"]
    assert "session" not in cookie and "sid" not in cookie
    result = ProtoMessageFetchResult().parse(r.content)
    assert result.push_server.startswith(gateway.url.replace("http://", "ws://") + "/webcast/ws/")
    url = result.push_server + "?" + "&".join(f"{k}={v}" for k, v in result.route_params.items())
    url += f"&room_id={room_id}"
    with ws_connect(url, subprotocols=[Subprotocol("echo-protocol")], open_timeout=5) as ws:
        assert ws.subprotocol == "echo-protocol"
        assert ws.response is not None
        assert "ping-interval" in (ws.response.headers.get("handshake-options") or "")
        add_comment(sim.url, room_id, uname("fan"), "over the proxy")
        frame = WebcastPushFrame().parse(ws.recv(timeout=5))
        assert frame.payload_type == "msg"
        assert "over the proxy" in chats(frame.payload)
    connects = [e for e in room_state(sim.url, room_id)["ws_log"] if e["type"] == "connect"]
    assert connects and connects[-1]["with_session"] is True
    # Tickets are single use.
    with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
        ws_connect(url, open_timeout=5)
    assert exc.value.response.status_code == 200
    assert "ticket" in (exc.value.response.headers.get("handshake-msg") or "")


def test_revoked_grant_ticket_is_refused(
    gateway: ServerThread, sim: ServerThread, database: Database
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("rv"))
    room_id = new_room(sim.url, uname("rvs"))
    r = httpx.get(
        f"{gateway.url}/webcast/fetch", params={"room_id": room_id}, headers=bearer(u.access_token)
    )
    assert r.status_code == 200
    result = ProtoMessageFetchResult().parse(r.content)
    assert revoke(gateway.url, u.app, u.refresh_token, "refresh_token").status_code == 200
    url = result.push_server + "?wrss=" + result.route_params["wrss"] + f"&room_id={room_id}"
    with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
        ws_connect(url, open_timeout=5)
    assert "no longer active" in (exc.value.response.headers.get("handshake-msg") or "")
    r = httpx.get(
        f"{gateway.url}/webcast/fetch", params={"room_id": room_id}, headers=bearer(u.access_token)
    )
    assert_error(r, 401, "invalid_token")


def test_fetch_by_unique_id_get_post_and_connect(
    gw: httpx.Client, user: User, room: tuple[str, str]
) -> None:
    room_id, streamer = room
    h = {"x-oauth-token": user.access_token}
    r1 = gw.get("/webcast/fetch", params={"unique_id": streamer}, headers=h)
    r2 = gw.post("/webcast/fetch", json={"unique_id": streamer}, headers=h)
    r3 = gw.get(
        "/webcast/rooms/0/connect",
        params={"unique_id": streamer, "client": "ttlive-node", "client_enter": "true"},
        headers={"X-Api-Key": user.api_key},
    )
    r4 = gw.get(f"/webcast/rooms/{room_id}/connect", headers={"X-Api-Key": user.api_key})
    for r in (r1, r2, r3, r4):
        assert r.status_code == 200, r.text
        assert r.headers["x-room-id"] == room_id
        assert r.headers["x-set-tt-cookie"]
        assert "first!" in chats(r.content)


def test_bad_input_is_400(gw: httpx.Client, user: User) -> None:
    h = bearer(user.access_token)
    assert_error(gw.get("/webcast/fetch", headers=h), 400)
    assert_error(gw.get("/webcast/fetch", params={"room_id": "abc"}, headers=h), 400)
    assert_error(gw.get("/webcast/room_info", headers=h), 400)
    assert_error(gw.get("/webcast/room_id", headers=h), 400)
    bad_json = gw.post(
        "/webcast/fetch", content=b"{nope", headers={**h, "content-type": "application/json"}
    )
    assert_error(bad_json, 400)
    ids = [str(7_000_000_000_000_000_000 + i) for i in range(51)]
    assert_error(
        gw.post("/webcast/bulk_live_check", json={"user_numeric_ids": ids}, headers=h), 400
    )
    assert_error(gw.post("/webcast/bulk_live_check", json={}, headers=h), 400)
    assert_error(gw.post("/webcast/chat", json={"target_room_id": "1"}, headers=h), 400)


# -- room id / info / bulk / rankings / chat ------------------------------------------------


def test_room_id(gw: httpx.Client, user: User, room: tuple[str, str]) -> None:
    r = gw.get(
        "/webcast/room_id", params={"unique_id": room[1]}, headers={"X-Api-Key": user.api_key}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and body["room_id"] == room[0] and body["is_live"] is True
    r = gw.get(
        "/webcast/room_id", params={"unique_id": uname("ghost")}, headers=bearer(user.access_token)
    )
    assert_error(r, 404, "user_not_found")


def test_room_info_age_restricted_needs_a_session(
    gw: httpx.Client, user: User, sim: ServerThread
) -> None:
    room_id = new_room(sim.url, uname("adult"), age_restricted=True)
    r = gw.get(
        "/webcast/room_info", params={"room_id": room_id}, headers={"X-Api-Key": user.api_key}
    )
    assert_error(r, 403, "age_restricted")
    for path in ("/webcast/room_info?room_id=" + room_id, f"/webcast/rooms/{room_id}/room_info"):
        r = gw.get(path, headers=bearer(user.access_token))
        assert r.status_code == 200, r.text
        assert r.json()["data"]["id_str"] == room_id


def test_private_room_is_403(gw: httpx.Client, user: User, sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("priv"), private=True)
    r = gw.get("/webcast/fetch", params={"room_id": room_id}, headers=bearer(user.access_token))
    assert_error(r, 403, "private_room")


def test_bulk_live_check_both_forms(
    gateway: ServerThread, gw: httpx.Client, user: User, sim: ServerThread, database: Database
) -> None:
    live = new_user(gateway.url, sim.url, database, uname("live"))
    gone = new_user(gateway.url, sim.url, database, uname("gone"))
    live_room = new_room(sim.url, live.unique_id)
    gone_room = new_room(sim.url, gone.unique_id)
    httpx.delete(f"{sim.url}/_sim/rooms/{gone_room}").raise_for_status()
    stranger = "7999999999999999999"
    h = bearer(user.access_token)
    r = gw.post(
        "/webcast/bulk_live_check",
        json={"user_numeric_ids": [live.uid, int(gone.uid), stranger]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    data = r.json()["response"]["data"]
    assert data[live.uid] == {"is_live": True, "room_id": live_room}
    assert data[gone.uid]["is_live"] is False
    assert data[stranger]["is_live"] is None  # unknown, never "offline"

    r = gw.post(
        "/webcast/bulk_live_check",
        json={"unique_ids": [live.unique_id, "@" + gone.unique_id]},
        headers={"X-Api-Key": user.api_key},
    )
    assert r.json() == {live.unique_id: True, gone.unique_id: False}
    with fault(sim.url, route="api-live/user/room", status=500):
        r = gw.post("/webcast/bulk_live_check", json={"unique_ids": [live.unique_id]}, headers=h)
        assert r.json() == {live.unique_id: None}
        r = gw.post("/webcast/bulk_live_check", json={"user_numeric_ids": [live.uid]}, headers=h)
        assert r.json()["response"]["data"][live.uid]["is_live"] is None


def test_rankings(gw: httpx.Client, user: User, room: tuple[str, str]) -> None:
    r = gw.get(
        "/webcast/rankings",
        params={"region": "US", "rank_type": "DAILY_RANK"},
        headers=bearer(user.access_token),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and body["region"] == "US"
    assert any(e["user"]["unique_id"] == room[1] for e in body["response"]["ranks"])
    r = gw.post("/webcast/rankings", json={"region": "US"}, headers={"X-Api-Key": user.api_key})
    assert r.status_code == 200 and r.json()["response"]["ranks"]


def test_chat_puts_a_comment_into_the_room(gw: httpx.Client, user: User, sim: ServerThread) -> None:
    room_id = new_room(sim.url, uname("chatroom"))
    h = bearer(user.access_token)
    r = gw.post(
        "/webcast/chat",
        json={"content": "hello via livegate", "target_room_id": room_id},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 200
    r = gw.post(f"/webcast/rooms/{room_id}/chat", json={"content": "and again"}, headers=h)
    assert r.status_code == 200, r.text
    comments = room_state(sim.url, room_id)["comments"]
    assert [(c["unique_id"], c["content"]) for c in comments] == [
        (user.unique_id, "hello via livegate"),
        (user.unique_id, "and again"),
    ]
    r = gw.post(
        f"/webcast/rooms/{room_id}/chat",
        json={"content": "anon"},
        headers={"X-Api-Key": user.api_key},
    )
    assert_error(r, 403, "session_required")


# -- upstream failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "error"),
    [
        ({"status": 403}, 502, "upstream_blocked"),
        ({"status": 500}, 502, "upstream_error"),
        ({"empty_body": True}, 502, "upstream_empty"),
        ({"delay_ms": 2500}, 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_are_mapped(
    fast: ServerThread,
    user: User,
    room: tuple[str, str],
    sim: ServerThread,
    spec: dict[str, Any],
    status: int,
    error: str,
) -> None:
    with fault(sim.url, route="im/fetch", **spec):
        t0 = time.monotonic()
        r = httpx.get(
            f"{fast.url}/webcast/fetch",
            params={"room_id": room[0]},
            headers={"X-Api-Key": user.api_key},
            timeout=10,
        )
        assert time.monotonic() - t0 < 4
    assert_error(r, status, error)
    assert r.content.strip()


def test_user_offline_is_404(gw: httpx.Client, user: User, sim: ServerThread) -> None:
    streamer = uname("off")
    room_id = new_room(sim.url, streamer)
    httpx.delete(f"{sim.url}/_sim/rooms/{room_id}").raise_for_status()
    r = gw.get("/webcast/fetch", params={"unique_id": streamer}, headers=bearer(user.access_token))
    assert_error(r, 404, "user_offline")


def test_expired_tiktok_session_is_login_required_for_every_token_of_the_grant(
    gateway: ServerThread, sim: ServerThread, database: Database, room: tuple[str, str]
) -> None:
    u = new_user(gateway.url, sim.url, database, uname("exp"))
    # A second access token of the same grant (refresh rotation keeps the grant).
    from tests.oauth_helpers import refresh

    second = refresh(gateway.url, u.app, u.refresh_token).json()["access_token"]
    assert httpx.post(f"{sim.url}/_sim/sessions/{u.uid}/expire").status_code == 200
    r = httpx.get(
        f"{gateway.url}/webcast/fetch", params={"room_id": room[0]}, headers=bearer(second)
    )
    body = assert_error(r, 401, "invalid_token")
    assert body["message"] == "login_required"
    assert 'error_description="login_required"' in r.headers["www-authenticate"]
    for token in (u.access_token, second):
        r = httpx.get(f"{gateway.url}/webcast/rate_limits", headers=bearer(token))
        assert assert_error(r, 401, "invalid_token")["message"] == "login_required"


def test_push_server_rewrite_keeps_every_other_field() -> None:
    from TikTokLive.proto import BaseProtoMessage

    from livegate.tiktok.protobuf import rewrite_push_server

    original = ProtoMessageFetchResult(
        messages=[BaseProtoMessage(method="WebcastChatMessage", payload=b"x" * 300, msg_id=7)],
        cursor="t-1_r-1",
        route_params={"wrss": "abc"},
        push_server="wss://webcast-ws.tiktok.com/webcast/im/ws_proxy/ws_reuse_supplement/",
        is_first=True,
        need_ack=True,
        internal_ext="seq:3",
    )
    out = rewrite_push_server(bytes(original), lambda up: "ws://gw/webcast/ws/t/?" + up[-8:])
    parsed = ProtoMessageFetchResult().parse(out)
    assert parsed.push_server == "ws://gw/webcast/ws/t/?plement/"
    parsed.push_server = original.push_server
    assert parsed == original
    # No push_server on the wire: the proto-class fallback leaves the result alone.
    bare = ProtoMessageFetchResult(cursor="c")
    assert rewrite_push_server(bytes(bare), lambda up: "nope") == bytes(bare)
