"""Arbitrary input never gets a 500 or a traceback: always a standard error shape.

Short by design (it runs in CI): the OAuth endpoints, the webcast routes, the dashboard's and
/account's numeric ids, JSON nested deep or holding lone surrogates, and request sizes on
either side of the limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livegate.config import Settings
from livegate.db.engine import Database
from tests.servers import ServerThread
from tests.test_dashboard import AccountBrowser, Dash, csrf_of, developer
from tests.test_input_limits import chunked, exchange, head
from tests.webcast_helpers import api_key_for, extra_gateway

spec = pytest.mark.spec

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


@spec("livegate", "security: bad input gets a 4xx in the standard shape, never a 500")
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


@spec("livegate", "security: bad input gets a 4xx in the standard shape, never a 500")
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


@spec("livegate", "security: bad input gets a 4xx in the standard shape, never a 500")
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


# -- JSON nested deep or holding lone surrogates ----------------------------------------------

# Text with lone surrogates among ordinary characters; json.dumps writes them as \ud800 escapes.
surrogate_text = st.text(
    st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    max_size=12,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | surrogate_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(surrogate_text, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + "1" + closer * depth).encode()


json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["unique_id", "room_id", "user_numeric_ids", "unique_ids", "content"]),
        json_values,
        max_size=3,
    ).map(lambda v: json.dumps(v).encode()),
    st.builds(nested, st.integers(0, 5000), st.sampled_from(["[", '{"a":'])),
)


@spec("RFC 8259", "9")
@FUZZ
@given(
    body=json_bodies, path=st.sampled_from(["token", "revoke", "introspect", "validate-refresh"])
)
def test_oauth_endpoints_with_deep_or_unencodable_json(
    gateway: ServerThread, body: bytes, path: str
) -> None:
    r = httpx.post(
        f"{gateway.url}/tiktok/oauth/{path}",
        content=body,
        headers={"content-type": "application/json"},
    )
    check(r)


# -- the webcast routes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def roomy(gateway_settings: Settings) -> Iterator[ServerThread]:
    """A gateway whose rate limits stay out of the way of the examples."""
    server = extra_gateway(
        gateway_settings, rate_limit_connect="100000/minute", rate_limit_calls="100000/minute"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_key(database: Database) -> str:
    return api_key_for(database, None)


WEBCAST_GET = [
    "/webcast/fetch",
    "/webcast/rooms/{id}/connect",
    "/webcast/room_id",
    "/webcast/room_info",
    "/webcast/rooms/{id}/room_info",
    "/webcast/rankings",
    "/webcast/rate_limits",
]
WEBCAST_POST = [
    "/webcast/fetch",
    "/webcast/bulk_live_check",
    "/webcast/rankings",
    "/webcast/chat",
    "/webcast/rooms/{id}/chat",
]
ids = st.one_of(
    st.text(max_size=24),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "²", "١٢٣", "7" * 21, str(2**63), " 7", "7_0", "@name"]),
)
webcast_params = st.dictionaries(
    st.sampled_from(
        [
            "room_id",
            "unique_id",
            "cursor",
            "user_agent",
            "client_enter",
            "session_id",
            "tt_target_idc",
            "region",
            "rank_type",
            "client",
            "apiKey",
        ]
    ),
    ids,
    max_size=5,
)


def check_webcast(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert body["code"] == r.status_code, body
        assert isinstance(body["message"], str) and "Traceback" not in body["message"], body


@spec("livegate", "security: webcast input is bounded before any upstream call")
@FUZZ
@given(path=st.sampled_from(WEBCAST_GET), room=ids, params=webcast_params)
def test_webcast_queries_never_fail_badly(
    roomy: ServerThread, api_key: str, path: str, room: str, params: dict[str, str]
) -> None:
    url = roomy.url + path.replace("{id}", quote(room, safe=""))
    check_webcast(httpx.get(url, params=params, headers={"X-Api-Key": api_key}, timeout=15))


@spec("livegate", "security: webcast input is bounded before any upstream call")
@FUZZ
@given(path=st.sampled_from(WEBCAST_POST), room=ids, body=json_bodies)
def test_webcast_bodies_never_fail_badly(
    roomy: ServerThread, api_key: str, path: str, room: str, body: bytes
) -> None:
    url = roomy.url + path.replace("{id}", quote(room, safe=""))
    headers = {"X-Api-Key": api_key, "content-type": "application/json"}
    check_webcast(httpx.post(url, content=body, headers=headers, timeout=15))


# -- numeric ids on the dashboard and /account ------------------------------------------------


def check_page(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("text/html"), (r.status_code, r.text[:300])
        assert "Traceback" not in r.text


@pytest.fixture(scope="module")
def dash(gateway: ServerThread, database: Database) -> Dash:
    dash, _ = developer(database, gateway.url)
    dash.get("/dashboard/apikeys")
    return dash


@pytest.fixture(scope="module")
def account(gateway: ServerThread, sim: ServerThread) -> tuple[AccountBrowser, str]:
    browser = AccountBrowser(gateway.url)
    page = browser.sign_in(sim.url, "fuzzacct")
    return browser, csrf_of(page.text)


@spec("livegate", "security: numeric ids are ASCII digits in the database's range, else 4xx")
@FUZZ
@given(key_id=ids)
def test_dashboard_ids_never_fail_badly(dash: Dash, key_id: str) -> None:
    path = f"/dashboard/apikeys/{quote(key_id, safe='')}/revoke"
    check_page(dash.http.post(path, data={"csrf_token": dash.csrf}))


@spec("livegate", "security: numeric ids are ASCII digits in the database's range, else 4xx")
@FUZZ
@given(grant_id=ids)
def test_account_ids_never_fail_badly(account: tuple[AccountBrowser, str], grant_id: str) -> None:
    browser, csrf = account
    check_page(browser.http.get("/account", params={"revoked": grant_id}))
    path = f"/account/apps/{quote(grant_id, safe='')}/revoke"
    check_page(browser.http.post(path, data={"csrf_token": csrf}))


# -- sizes on either side of the limits -------------------------------------------------------

BODY_LIMIT, HEAD_LIMIT = 2048, 1024


@pytest.fixture(scope="module")
def tight_sizes(gateway_settings: Settings) -> Iterator[ServerThread]:
    server = extra_gateway(gateway_settings, max_body_bytes=BODY_LIMIT, max_header_bytes=HEAD_LIMIT)
    yield server
    server.stop()


def form_of(size: int) -> bytes:
    return (b"grant_type=" + b"x" * size)[:size]


@spec("RFC 9110", "15.5.14")
@FUZZ
@given(size=st.integers(BODY_LIMIT - 3, BODY_LIMIT + 3), is_chunked=st.booleans())
def test_bodies_around_the_limit(tight_sizes: ServerThread, size: int, is_chunked: bool) -> None:
    body = form_of(size)
    fields = [("Content-Type", "application/x-www-form-urlencoded")]
    if is_chunked:
        request = head("POST", "/tiktok/oauth/token", [*fields, ("Transfer-Encoding", "chunked")])
        pieces = [*chunked([body[:1000], body[1000:]]), b"0\r\n\r\n"]
    else:
        request = head("POST", "/tiktok/oauth/token", [*fields, ("Content-Length", str(size))])
        pieces = [body]
    answer = exchange(tight_sizes.port, request, pieces)
    if size > BODY_LIMIT:
        assert answer.status == 413 and answer.closed, (size, answer)
    else:  # read whole, then refused for what it says (no client, unknown grant type)
        assert answer.status in (400, 401), (size, answer)
        assert "larger than" not in answer.json().get("error_description", ""), (size, answer)


@spec("RFC 6585", "5")
@FUZZ
@given(size=st.integers(HEAD_LIMIT - 3, HEAD_LIMIT + 3))
def test_header_fields_around_the_limit(tight_sizes: ServerThread, size: int) -> None:
    # Counted as the server counts them: "name: value" and a line break, for each field.
    host = len("host") + len("127.0.0.1") + 4
    pad = size - host - (len("x-pad") + 4)
    answer = exchange(tight_sizes.port, head("GET", "/webcast/rate_limits", [("X-Pad", "p" * pad)]))
    assert answer.status == (431 if size > HEAD_LIMIT else 401), (size, answer)
