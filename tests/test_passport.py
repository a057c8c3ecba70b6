"""PassportClient against the real simulator over HTTP, plus the cookie-jar helpers."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from livegate.config import Settings
from livegate.simulator.app import create_simulator_app
from livegate.simulator.state import SimState
from livegate.tiktok.cookies import (
    SESSION_COOKIE_NAMES,
    cookie_header,
    has_login_cookie,
    keep_session_cookies,
    parse_sid_guard,
    session_expired,
    session_expiry,
)
from livegate.tiktok.errors import (
    SessionExpired,
    UpstreamBlocked,
    UpstreamEmpty,
    UpstreamError,
    UpstreamTimeout,
)
from livegate.tiktok.http import Upstream, make_http_client
from livegate.tiktok.passport import PassportClient, QRPoll
from tests.servers import ServerThread, free_port

SimFactory = Callable[..., tuple[ServerThread, SimState]]


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    started: list[ServerThread] = []

    def make(**state_kwargs: Any) -> tuple[ServerThread, SimState]:
        # Polling speed is its own test; elsewhere the sim must not throttle back-to-back polls.
        state_kwargs.setdefault("min_poll_interval", 0.0)
        state = SimState(**state_kwargs)
        server = ServerThread(create_simulator_app(state)).start()
        started.append(server)
        return server, state

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def passport_sim(make_sim: SimFactory) -> tuple[ServerThread, SimState]:
    return make_sim()


@pytest.fixture
async def passport_http() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(upstream_timeout=3.0)
    async with httpx.AsyncClient(timeout=settings.upstream_timeout) as client:
        yield client


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with make_http_client(Settings(upstream_timeout=3.0)) as client:
        yield client


def settings_for(url: str, tmp_path: Path, **kwargs: Any) -> Settings:
    return Settings(tiktok_url=url, data_dir=tmp_path, **kwargs)


async def control(
    passport_http: httpx.AsyncClient, base: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await passport_http.post(f"{base}/_sim{path}", json=body)


async def new_account(
    passport_http: httpx.AsyncClient, base: str, unique_id: str, **extra: Any
) -> str:
    resp = await control(passport_http, base, "/accounts", {"unique_id": unique_id, **extra})
    assert resp.status_code == 200
    return str(resp.json()["uid"])


async def poll_until(
    client: PassportClient,
    state: dict[str, Any],
    token: str,
    want: str,
    timeout: float = 10.0,
) -> QRPoll:
    deadline = time.monotonic() + timeout
    while True:
        result = await client.poll(state, token)
        if result.status == want:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"poll never reached {want!r}, last {result.status!r}")
        await asyncio.sleep(0.05)


# ---- the whole QR flow --------------------------------------------------------------


async def test_start_scan_confirm_gives_session_and_profile(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, simstate = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(
        passport_http, server.url, "alice_live", nickname="Alice", idc="useast2a"
    )

    before = int(time.time())
    state, qr = await client.start()

    assert qr.qrcode_index_url == f"{server.url}/_sim/phone?token={qr.token}"
    assert before + simstate.qr_lifetime <= qr.expire_time <= int(time.time()) + 60
    jar = state["cookies"]
    for name in ("ttwid", "tt_csrf_token", "passport_csrf_token", "msToken", "s_v_web_id"):
        assert jar.get(name), name
    assert len(state["device_id"]) == 19 and state["device_id"].isdigit()
    assert state["verify_fp"].startswith("verify_")
    assert state["host_index"] == 0

    assert (await client.poll(state, qr.token)).status == "new"
    resp = await control(passport_http, server.url, f"/qr/{qr.token}/scan")
    assert resp.status_code == 200 and resp.json()["status"] == "scanned"
    assert (await client.poll(state, qr.token)).status == "scanned"

    resp = await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": uid})
    assert resp.json() == {**resp.json(), "status": "confirmed", "uid": uid}
    result = await client.poll(state, qr.token)

    assert result.status == "confirmed"
    assert result.redirect_url == f"{server.url}/foryou?lang=en"
    cookies = result.cookies
    assert has_login_cookie(cookies)
    assert cookies["tt-target-idc"] == "useast2a"
    assert cookies["sessionid"] == cookies["sessionid_ss"] == cookies["sid_tt"]
    account = simstate.session_account(cookies["sessionid"])
    assert account is not None
    assert account.uid == uid
    assert cookies["store-country-code"] == "us"
    # Warm-up cookies stay, and the redirect's page load added its own.
    assert cookies["ttwid"] == jar["ttwid"] and cookies["tt_chain_token"]
    expiry = session_expiry(cookies)
    assert expiry is not None
    expected = datetime.now(UTC) + timedelta(seconds=simstate.session_max_age)
    assert abs((expiry - expected).total_seconds()) < 10
    assert set(keep_session_cookies(cookies)) <= SESSION_COOKIE_NAMES
    assert "sessionid" in keep_session_cookies(cookies)

    # A spent token does not hand out a second session.
    assert (await client.poll(state, qr.token)).status == "expired"

    profile = await client.fetch_profile(cookies)
    account = simstate.accounts[uid]
    assert profile.uid == uid
    assert profile.unique_id == "alice_live"
    assert profile.nickname == "Alice"
    assert profile.sec_uid == account.sec_uid and profile.sec_uid.startswith("MS4wLjABAAAA")
    assert profile.region == "US"
    assert profile.avatar_url == f"{server.url}/_sim/avatar/{uid}.svg"
    assert profile.room_id == "" and profile.has_live_permission is False
    assert profile.is_private_account is False


async def test_get_qrcode_shape(
    passport_sim: tuple[ServerThread, SimState], passport_http: httpx.AsyncClient
) -> None:
    server, simstate = passport_sim
    resp = await passport_http.get(f"{server.url}/passport/web/get_qrcode/", params={"aid": "1459"})
    body = resp.json()
    assert body["message"] == "success"
    data = body["data"]
    assert set(data) == {"token", "qrcode", "qrcode_index_url", "expire_time", "error_code"}
    assert data["error_code"] == 0
    assert base64.b64decode(data["qrcode"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert data["token"] in simstate.qr_logins
    resp = await passport_http.post(f"{server.url}/passport/web/get_qrcode/")
    assert resp.json()["data"]["token"] != data["token"]


async def test_refused(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()
    assert (await control(passport_http, server.url, f"/qr/{qr.token}/refuse")).json()[
        "status"
    ] == "refused"
    result = await client.poll(state, qr.token)
    assert result == QRPoll(status="refused")
    # A refused login cannot be confirmed afterwards.
    resp = await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": "1"})
    assert resp.status_code in (404, 409)


async def test_expiry_then_new_qr(
    upstream: Upstream, make_sim: SimFactory, passport_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    server, _ = make_sim(qr_lifetime=1)
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()
    assert qr.expire_time - time.time() <= 1.5

    await poll_until(client, state, qr.token, "expired", timeout=5)
    resp = await control(passport_http, server.url, f"/qr/{qr.token}/scan")
    assert resp.status_code == 409

    fresh = await client.new_qr(state)
    assert fresh.token != qr.token
    assert fresh.qrcode_index_url.endswith(f"token={fresh.token}")
    assert (await client.poll(state, fresh.token)).status == "new"


async def test_polling_too_fast_backs_off(
    upstream: Upstream, make_sim: SimFactory, passport_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    server, _ = make_sim(min_poll_interval=30.0)
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()
    assert (await client.poll(state, qr.token)).status == "new"
    result = await client.poll(state, qr.token)
    assert result.status == "slow_down"
    assert result.retry_after == 120
    assert result.error_code == 7


async def test_verify_then_confirm(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(passport_http, server.url, "bob2fa")
    state, qr = await client.start()
    resp = await control(passport_http, server.url, f"/qr/{qr.token}/verify", {"uid": uid})
    assert resp.json()["status"] == "verify"

    result = await client.poll(state, qr.token)
    assert result.status == "verify"
    assert result.error_code == 2135
    assert result.verify_ticket and len(result.verify_ticket) >= 32
    assert result.cookies == {}
    again = await client.poll(state, qr.token)
    assert again.verify_ticket == result.verify_ticket

    await control(passport_http, server.url, f"/qr/{qr.token}/confirm")
    done = await client.poll(state, qr.token)
    assert done.status == "confirmed" and has_login_cookie(done.cookies)


async def test_host_fallback(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(server.url, tmp_path, tiktok_passport_urls=[dead, server.url])
    assert settings.passport_urls == [dead, server.url]
    client = PassportClient(upstream, settings)
    uid = await new_account(passport_http, server.url, "carol")
    state, qr = await client.start()

    assert (await client.poll(state, qr.token)).status == "new"
    assert state["host_index"] == 1
    await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": uid})
    result = await client.poll(state, qr.token)
    assert result.status == "confirmed" and has_login_cookie(result.cookies)


async def test_all_hosts_dead(
    upstream: Upstream, passport_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = PassportClient(upstream, settings_for(dead, tmp_path))
    with pytest.raises(UpstreamError):
        await client.start()
    with pytest.raises(UpstreamError) as info:
        await client.poll({"cookies": {}}, "tok")
    assert type(info.value) is UpstreamError


async def test_fault_injection(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, simstate = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()

    # One 503 is absorbed by the single-host retry.
    fault = {"route": "check_qrconnect", "status": 503, "count": 1}
    assert (await control(passport_http, server.url, "/faults", fault)).status_code == 200
    assert (await client.poll(state, qr.token)).status == "new"
    assert simstate.faults == []

    # Two in a row fail the poll; the next poll works again.
    await control(passport_http, server.url, "/faults", {**fault, "count": 2})
    with pytest.raises(UpstreamError) as info:
        await client.poll(state, qr.token)
    assert info.value.code == "upstream_error" and "503" in info.value.message
    assert (await client.poll(state, qr.token)).status == "new"

    await control(passport_http, server.url, "/faults", {**fault, "status": 403, "count": 1})
    with pytest.raises(UpstreamBlocked):
        await client.poll(state, qr.token)

    await control(
        passport_http, server.url, "/faults", {"route": "check_qrconnect", "empty_body": True}
    )
    with pytest.raises(UpstreamEmpty):
        await client.poll(state, qr.token)
    await passport_http.delete(f"{server.url}/_sim/faults")
    assert (await client.poll(state, qr.token)).status == "new"


async def test_timeout(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()
    await control(
        passport_http, server.url, "/faults", {"route": "check_qrconnect", "delay_ms": 1500}
    )
    fast = make_http_client(Settings(upstream_timeout=0.3))
    try:
        with pytest.raises(UpstreamTimeout):
            await PassportClient(fast, settings_for(server.url, tmp_path)).poll(state, qr.token)
    finally:
        await fast.aclose()


async def test_profile_with_expired_session(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(passport_http, server.url, "dave")
    state, qr = await client.start()
    await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": uid})
    cookies = (await client.poll(state, qr.token)).cookies
    assert (await client.fetch_profile(cookies)).uid == uid

    await control(passport_http, server.url, f"/sessions/{uid}/expire")
    with pytest.raises(SessionExpired):
        await client.fetch_profile(cookies)
    with pytest.raises(SessionExpired):
        await client.fetch_profile({})

    logged_out = (await passport_http.get(f"{server.url}/passport/web/account/info/")).json()
    assert logged_out["message"] == "error"
    assert logged_out["data"]["error_code"] != 0
    assert "sign in again" in logged_out["data"]["description"]


async def test_user_detail_shapes(
    passport_sim: tuple[ServerThread, SimState], passport_http: httpx.AsyncClient
) -> None:
    server, _ = passport_sim
    uid = await new_account(passport_http, server.url, "erin")
    body = (
        await passport_http.get(f"{server.url}/api/user/detail/", params={"uniqueId": "erin"})
    ).json()
    assert body["statusCode"] == 0
    user = body["userInfo"]["user"]
    assert user["id"] == uid and user["uniqueId"] == "erin" and user["secUid"]
    assert "region" not in user  # only the owner's own session sees it
    missing = (
        await passport_http.get(f"{server.url}/api/user/detail/", params={"uniqueId": "nobody"})
    ).json()
    assert missing["statusCode"] != 0 and missing["userInfo"] == {}


async def test_no_secrets_in_logs(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    dead = f"http://127.0.0.1:{free_port()}"
    client = PassportClient(
        upstream, settings_for(server.url, tmp_path, tiktok_passport_urls=[dead, server.url])
    )
    uid = await new_account(passport_http, server.url, "frank")
    with structlog.testing.capture_logs() as logs:
        state, qr = await client.start()
        await client.poll(state, qr.token)
        await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": uid})
        cookies = (await client.poll(state, qr.token)).cookies
        await client.fetch_profile(cookies)
    assert logs, "the dead host should have been logged"
    text = repr(logs)
    for secret in [qr.token, *cookies.values()]:
        assert secret not in text


# ---- control API and phone page ------------------------------------------------------


async def test_control_api(
    upstream: Upstream, make_sim: SimFactory, passport_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Long enough that neither QR expires while a loaded machine runs the first checks.
    server, _ = make_sim(qr_lifetime=3)
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(passport_http, server.url, "gina")
    _, first = await client.start()
    _, second = await client.start()

    rows = (await passport_http.get(f"{server.url}/_sim/qr")).json()
    assert [r["token"] for r in rows[:2]] == [second.token, first.token]
    assert set(rows[0]) >= {"token", "status", "created_at"}
    assert rows[0]["status"] == "new"

    assert (await control(passport_http, server.url, "/qr/nope/scan")).status_code == 404
    resp = await control(passport_http, server.url, f"/qr/{first.token}/confirm", {"uid": "999"})
    assert resp.status_code == 404
    resp = await control(passport_http, server.url, f"/qr/{first.token}/confirm")
    assert resp.status_code == 422

    def expired() -> bool:
        return bool(time.time() > second.expire_time)

    deadline = time.monotonic() + 8
    while not expired():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    resp = await control(passport_http, server.url, f"/qr/{second.token}/confirm", {"uid": uid})
    assert resp.status_code == 409
    assert (await passport_http.get(f"{server.url}/_sim/qr")).json() == []
    everything = (await passport_http.get(f"{server.url}/_sim/qr", params={"all": "true"})).json()
    assert {r["status"] for r in everything} == {"expired"}


async def test_phone_page_confirm(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, simstate = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(passport_http, server.url, "henry", nickname="Henry H")
    state, qr = await client.start()

    page = await passport_http.get(qr.qrcode_index_url)
    assert page.status_code == 200
    html = page.text
    assert 'action="phone/confirm"' in html and 'action="phone/refuse"' in html
    assert f'value="{uid}"' in html and "@henry" in html
    assert '<label class="field" for="unique_id">' in html
    assert ">Confirm</button>" in html and ">Refuse</button>" in html
    # Opening the QR's URL on the phone counts as scanning it.
    assert (await client.poll(state, qr.token)).status == "scanned"

    resp = await passport_http.post(
        f"{server.url}/_sim/phone/confirm", data={"token": qr.token, "uid": uid}
    )
    assert resp.status_code == 303
    done = await passport_http.get(resp.headers["location"])
    assert "Confirmed — you can return to your computer" in done.text
    assert simstate.qr_logins[qr.token].status == "confirmed"
    result = await client.poll(state, qr.token)
    assert result.status == "confirmed"
    assert (await client.fetch_profile(result.cookies)).unique_id == "henry"


async def test_phone_page_new_account_and_refuse(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, simstate = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    state, qr = await client.start()
    page = await passport_http.get(f"{server.url}/_sim/phone", params={"token": qr.token})
    assert "Create an account" in page.text

    bad = await passport_http.post(
        f"{server.url}/_sim/phone/confirm", data={"token": qr.token, "unique_id": "x"}
    )
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    resp = await passport_http.post(
        f"{server.url}/_sim/phone/confirm", data={"token": qr.token, "unique_id": "@ivy.new"}
    )
    assert resp.status_code == 303
    created = simstate.account_by_unique_id("ivy.new")
    assert created is not None
    result = await client.poll(state, qr.token)
    profile = await client.fetch_profile(result.cookies)
    assert (profile.uid, profile.unique_id) == (created.uid, "ivy.new")

    state2, qr2 = await client.start()
    resp = await passport_http.post(f"{server.url}/_sim/phone/refuse", data={"token": qr2.token})
    assert resp.status_code == 303
    assert "Refused" in (await passport_http.get(resp.headers["location"])).text
    assert (await client.poll(state2, qr2.token)).status == "refused"

    unknown = await passport_http.get(f"{server.url}/_sim/phone", params={"token": "nope"})
    assert unknown.status_code == 404 and "not valid" in unknown.text


# ---- cookies.py ------------------------------------------------------------------------


def test_parse_sid_guard() -> None:
    issued = 1_700_000_000
    plain = f"abc123|{issued}|5184000|Sat, 13-Jan-2024 22:13:20 GMT"
    assert parse_sid_guard(plain) == datetime.fromtimestamp(issued + 5_184_000, tz=UTC)
    encoded = f"abc123%7C{issued}%7C5184000%7CSat%2C+13-Jan-2024+22%3A13%3A20+GMT"
    assert parse_sid_guard(encoded) == datetime.fromtimestamp(issued + 5_184_000, tz=UTC)
    # Issued time unusable: the HTTP date still gives the answer.
    from_date = parse_sid_guard("abc|x|y|Tue, 15 Nov 1994 08:12:31 GMT")
    assert from_date == datetime(1994, 11, 15, 8, 12, 31, tzinfo=UTC)
    assert from_date is not None and from_date.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "abc|1|2",
        "|1700000000|5184000|Sat, 13-Jan-2024 22:13:20 GMT",
        "abc|x|y|not a date",
        "abc|1700000000|-5|garbage",
        "abc|1700000000|5184000|extra|fields",
        "a|b|c|d",
    ],
)
def test_parse_sid_guard_malformed(value: str) -> None:
    assert parse_sid_guard(value) is None


def test_jar_helpers() -> None:
    future = int(time.time())
    jar = {
        "sessionid": "s1",
        "tt-target-idc": "useast1a",
        "sid_guard": f"s1|{future}|60|x",
        "ttwid": "1%7Cabc",
        "random_tracker": "zzz",
        "empty": "",
    }
    assert has_login_cookie(jar)
    assert not has_login_cookie({"sessionid": "s1"})
    assert not has_login_cookie({"tt-target-idc": "useast1a", "sessionid": ""})
    assert session_expiry(jar) == datetime.fromtimestamp(future + 60, tz=UTC)
    assert session_expiry({}) is None
    assert not session_expired(jar)
    assert session_expired(jar, now=datetime.now(UTC) + timedelta(seconds=120))
    assert cookie_header({"a": "1", "b": "x y", "bad;name": "v", "c": "", "d": "e;f"}) == (
        "a=1; b=x y"
    )
    assert cookie_header({"a": "1", "b": "x y"}) == "a=1; b=x y"
    assert cookie_header({"a": "1", "b": "x\r\ny"}) == "a=1"
    assert cookie_header({"a=": "1", "b": "2"}) == "b=2"
    assert keep_session_cookies(jar) == {
        "sessionid": "s1",
        "tt-target-idc": "useast1a",
        "sid_guard": jar["sid_guard"],
        "ttwid": "1%7Cabc",
    }


async def test_profile_room_id_from_webcast_world(
    upstream: Upstream,
    passport_sim: tuple[ServerThread, SimState],
    passport_http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    server, _ = passport_sim
    client = PassportClient(upstream, settings_for(server.url, tmp_path))
    uid = await new_account(passport_http, server.url, "streamer")
    resp = await control(passport_http, server.url, "/rooms", {"unique_id": "streamer"})
    assert resp.status_code == 200, resp.text
    room_id = str(resp.json()["room_id"])
    state, qr = await client.start()
    await control(passport_http, server.url, f"/qr/{qr.token}/confirm", {"uid": uid})
    cookies = (await client.poll(state, qr.token)).cookies
    profile = await client.fetch_profile(cookies)
    assert profile.room_id == room_id
    assert profile.has_live_permission is True

    await passport_http.delete(f"{server.url}/_sim/rooms/{room_id}")
    assert (await client.fetch_profile(cookies)).room_id == ""
