"""No cookie value, code, token, secret or pending-login id reaches the server's log output."""

from __future__ import annotations

import io

import httpx

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.logs import redact
from livegate.vault import Vault
from tests.flows import authorize_url, query, sign_in, start_qr
from tests.oauth_helpers import exchange, introspect, refresh, register, revoke
from tests.servers import ServerThread


def test_no_secret_in_logs(
    gateway: ServerThread,
    sim: ServerThread,
    database: Database,
    gateway_settings: Settings,
    log_buffer: io.StringIO,
) -> None:
    app = register(database)
    assert app.client_secret
    url = authorize_url(gateway.url, app.client_id, app.redirect_uri, "webcast:fetch user:info")
    redirect = sign_in(gateway.url, sim.url, url, "logwatcher")
    code = query(redirect)["code"]
    t1 = exchange(gateway.url, app, code).json()
    t2 = refresh(gateway.url, app, t1["refresh_token"]).json()
    httpx.get(
        f"{gateway.url}/tiktok/oauth/userinfo",
        headers={"Authorization": f"Bearer {t2['access_token']}"},
    )
    httpx.get(f"{gateway.url}/tiktok/oauth/userinfo?access_token={t2['access_token']}")
    introspect(gateway.url, app, t2["access_token"])
    with database.session() as s:
        jar = Vault(gateway_settings.server_keys).open(s, t2["access_token"])
    revoke(gateway.url, app, t2["refresh_token"])
    pending = start_qr(gateway.url, url)

    logged = log_buffer.getvalue()
    assert "POST /tiktok/oauth/token" in logged, "the access log is not being captured"
    secrets = {
        "code": code,
        "client_secret": app.client_secret,
        "access_token": t1["access_token"],
        "refresh_token": t1["refresh_token"],
        "rotated access_token": t2["access_token"],
        "rotated refresh_token": t2["refresh_token"],
        "pending login id": pending.login_id,
        "login csrf": pending.csrf,
        "qr token": pending.qr_token,
    }
    # Data-centre names (tt-target-idc, store-idc: "useast1a") are not secrets: TikTokLive sends
    # "useast1a" as its own default tt_target_idc on every /webcast/fetch, so it is logged.
    public = {"store-idc", "tt-target-idc", "store-country-code"}
    secrets.update({f"cookie {k}": v for k, v in jar.items() if len(v) >= 8 and k not in public})
    leaked = [name for name, value in secrets.items() if value in logged]
    assert leaked == []


def test_redaction_patterns() -> None:
    line = (
        "GET /cb?code=lg_ac_abc&state=s HTTP/1.1 Authorization: Bearer abc.def sessionid=deadbeef; "
        "x lg_rt_123 /tiktok/oauth/login/LOGINID/status /_sim/phone?token=QRTOKEN "
        "/webcast/ws/WSTICKET/"
    )
    out = redact(line)
    for secret in (
        "lg_ac_abc",
        "abc.def",
        "deadbeef",
        "lg_rt_123",
        "LOGINID",
        "QRTOKEN",
        "WSTICKET",
    ):
        assert secret not in out
    assert "state=s" in out


def test_json_log_lines_are_redacted_too() -> None:
    import json
    import logging

    from livegate.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buf = io.StringIO()
    try:
        setup_logging("info", stream=buf, json_lines=True)
        logging.getLogger("livegate.test").info("exchanging code=lg_ac_secret1 for lg_at_secret2")
    finally:
        root.handlers, root.level = saved[0], saved[1]
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert line["level"] == "info" and line["logger"] == "livegate.test"
    assert "secret1" not in line["event"] and "secret2" not in line["event"]


def test_websocket_close_codes_are_not_redacted() -> None:
    # websockets' repr of a close frame, as it appears in TikTokLive's and uvicorn's lines.
    line = (
        "ConnectionClosedError(None, Close(code=<CloseCode.NORMAL_CLOSURE: 1000>, reason=''), "
        "None) sent 1000 (OK); relay closed with code=4401"
    )
    assert redact(line) == line


def test_oauth_codes_are_redacted_beside_close_codes() -> None:
    line = (
        "GET /callback?code=lg_ac_secretvalue&state=s HTTP/1.1 200 "
        "code=Xy7-secret_long_value; code=123456 code=1234-abcd "
        "Close(code=<CloseCode.GOING_AWAY: 1001>, reason='')"
    )
    out = redact(line)
    for secret in ("secretvalue", "Xy7-secret_long_value", "123456", "1234-abcd"):
        assert secret not in out, out
    assert "Close(code=<CloseCode.GOING_AWAY: 1001>, reason='')" in out
    assert "state=s" in out
