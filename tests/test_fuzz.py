"""Arbitrary input never gets a 500 or a traceback: always a standard error shape."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import ServerThread

FIELDS = [
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "refresh_token",
    "code_verifier",
    "scope",
    "token",
    "token_type_hint",
]
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["authorization_code", "refresh_token", "lg_at_x", "lg_rt_x", "lg_ac_x", "lgc_x", ""]
    ),
)
forms = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body.get("error"), (str, dict)), body


@FUZZ
@given(
    form=forms,
    as_json=st.booleans(),
    path=st.sampled_from(["token", "revoke", "introspect", "validate-refresh"]),
)
def test_oauth_endpoints_never_fail_badly(
    gateway: ServerThread, form: dict[str, str], as_json: bool, path: str
) -> None:
    url = f"{gateway.url}/tiktok/oauth/{path}"
    r = httpx.post(url, json=form) if as_json else httpx.post(url, data=form)
    check(r)


@FUZZ
@given(
    body=st.binary(max_size=200),
    ctype=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
    ),
)
def test_token_endpoint_with_raw_bytes(gateway: ServerThread, body: bytes, ctype: str) -> None:
    headers = {"content-type": ctype} if ctype else {}
    check(httpx.post(f"{gateway.url}/tiktok/oauth/token", content=body, headers=headers))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
            ]
        ),
        st.text(max_size=30),
        max_size=7,
    )
)
def test_authorize_never_fails_badly(gateway: ServerThread, params: dict[str, str]) -> None:
    r = httpx.get(f"{gateway.url}/tiktok/oauth/authorize", params=params)
    assert r.status_code in (200, 302, 400), r.text[:300]
    assert "Traceback" not in r.text
