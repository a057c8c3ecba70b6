"""The operator's counters are fed by the code that does the work: an open relay shows in
`livegate_open_relays` until it closes, each upstream call in `livegate_upstream_calls` by
route and outcome, a refused call in `livegate_rate_limited` by limit, and each token
response in `livegate_grants_issued` or `livegate_grants_refused` (metrics.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from livegate.config import Settings
from livegate.db.engine import Database
from tests.oauth_helpers import refresh, register, tokens_for
from tests.servers import ServerThread, wait_for
from tests.test_observability import samples
from tests.test_relay_revocation import open_relay, relays_a_comment, uname
from tests.webcast_helpers import extra_gateway, new_room, new_user

TOKEN = "metrics-" + secrets.token_urlsafe(24)
Scraped = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metered(gateway_settings: Settings) -> Iterator[ServerThread]:
    server = extra_gateway(
        gateway_settings, metrics_token=SecretStr(TOKEN), rate_limit_connect="3/minute"
    )
    yield server
    server.stop()


def scrape(server: ServerThread) -> Scraped:
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return samples(r.text)


def value(scraped: Scraped, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def open_relays(server: ServerThread) -> float:
    return value(scrape(server), "livegate_open_relays")


def test_metrics_show_an_open_relay_and_the_upstream_calls_behind_it(
    metered: ServerThread, sim: ServerThread, database: Database
) -> None:
    user = new_user(metered.url, sim.url, database, uname("mt"))
    room_id = new_room(sim.url, uname("mts"))
    before = scrape(metered)
    fetches = value(before, "livegate_upstream_calls_total", route="im/fetch", outcome="ok")
    with open_relay(metered.url, user.access_token, room_id) as ws:
        relays_a_comment(ws, sim.url, room_id)
        during = scrape(metered)
        assert value(during, "livegate_open_relays") == value(before, "livegate_open_relays") + 1
        assert (
            value(during, "livegate_upstream_calls_total", route="im/fetch", outcome="ok")
            == fetches + 1
        )
    base = value(before, "livegate_open_relays")
    wait_for(lambda: open_relays(metered) == base, what="the closed relay no longer counted")


def test_metrics_count_a_call_refused_by_a_rate_limit(
    metered: ServerThread, sim: ServerThread, database: Database
) -> None:
    user = new_user(metered.url, sim.url, database, uname("ml"))
    room_id = new_room(sim.url, uname("mls"))
    before = value(scrape(metered), "livegate_rate_limited_total", limit="connect:token")
    statuses = [
        httpx.get(
            f"{metered.url}/webcast/fetch",
            params={"room_id": room_id},
            headers={"Authorization": f"Bearer {user.access_token}"},
            timeout=10,
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    after = value(scrape(metered), "livegate_rate_limited_total", limit="connect:token")
    assert after == before + 1


def test_metrics_count_grants_issued_and_refused(
    metered: ServerThread, sim: ServerThread, database: Database
) -> None:
    app = register(database)
    before = scrape(metered)
    pair = tokens_for(metered.url, sim.url, app)
    assert refresh(metered.url, app, pair["refresh_token"]).status_code == 200
    # The rotated token again: refused (and its family revoked) by the ORM path.
    assert refresh(metered.url, app, pair["refresh_token"]).status_code == 400
    after = scrape(metered)
    for grant_type in ("authorization_code", "refresh_token"):
        issued = "livegate_grants_issued_total"
        assert value(after, issued, grant_type=grant_type) == (
            value(before, issued, grant_type=grant_type) + 1
        )
    refused = {"grant_type": "refresh_token", "reason": "invalid_grant"}
    assert value(after, "livegate_grants_refused_total", **refused) == (
        value(before, "livegate_grants_refused_total", **refused) + 1
    )
