"""Driving the sign-in as a user would, over HTTP: consent page, QR page, the phone (simulator)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.servers import wait_for


@dataclass
class Login:
    login_id: str
    csrf: str
    qr_token: str
    browser: httpx.Client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def sim_account(sim_url: str, unique_id: str) -> dict[str, str]:
    r = httpx.post(
        f"{sim_url}/_sim/accounts", json={"unique_id": unique_id, "nickname": unique_id.title()}
    )
    r.raise_for_status()
    data: dict[str, str] = r.json()
    return data


def open_consent(
    gw_url: str, authorize_url: str, browser: httpx.Client | None = None
) -> tuple[httpx.Client, str, str]:
    browser = browser or httpx.Client(base_url=gw_url, follow_redirects=False, timeout=10)
    r = browser.get(authorize_url)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    m = re.search(r'action="/tiktok/oauth/login/([^/"]+)/start"', r.text)
    c = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert m and c, "consent page has no start form"
    return browser, m.group(1), c.group(1)


def start_qr(gw_url: str, authorize_url: str) -> Login:
    browser, login_id, csrf = open_consent(gw_url, authorize_url)
    r = browser.post(f"/tiktok/oauth/login/{login_id}/start", data={"csrf_token": csrf})
    assert r.status_code == 303, r.text[:300]
    page = browser.get(r.headers["location"])
    assert page.status_code == 200
    link = re.search(r'id="qr-link" href="([^"]+)"', page.text)
    assert link, "QR page shows no sign-in link"
    token = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)["token"][0]
    return Login(login_id, csrf, token, browser)


def phone(sim_url: str, token: str, action: str, uid: str | None = None) -> httpx.Response:
    return httpx.post(f"{sim_url}/_sim/qr/{token}/{action}", json={"uid": uid} if uid else {})


def wait_status(login: Login, want: set[str], timeout: float = 45) -> dict[str, object]:
    def check() -> dict[str, object] | None:
        r = login.browser.get(f"/tiktok/oauth/login/{login.login_id}/status")
        body: dict[str, object] = r.json()
        return body if body.get("status") in want or body.get("redirect") else None

    return wait_for(check, timeout=timeout, interval=0.1, what=f"login status in {want}")


def sign_in(gw_url: str, sim_url: str, authorize_url: str, unique_id: str) -> str:
    """Run the whole QR sign-in and return the redirect URL the app receives."""
    account = sim_account(sim_url, unique_id)
    login = start_qr(gw_url, authorize_url)
    assert phone(sim_url, login.qr_token, "scan", account["uid"]).status_code == 200
    wait_status(login, {"scanned"})
    assert phone(sim_url, login.qr_token, "confirm", account["uid"]).status_code == 200
    body = wait_status(login, {"done"})
    redirect = body.get("redirect")
    assert isinstance(redirect, str)
    return redirect


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authorize_url(gw_url: str, client_id: str, redirect_uri: str, scope: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        **extra,
    }
    return f"{gw_url}/tiktok/oauth/authorize?" + urlencode(params)


def token_request(
    gw_url: str, data: dict[str, str], auth: tuple[str, str] | None = None, as_json: bool = False
) -> httpx.Response:
    if as_json:
        return httpx.post(f"{gw_url}/tiktok/oauth/token", json=data, auth=auth, timeout=10)
    return httpx.post(f"{gw_url}/tiktok/oauth/token", data=data, auth=auth, timeout=10)
