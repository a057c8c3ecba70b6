"""Prometheus metrics: what they are, the helpers that count them, and one scrape.

Under `livegate serve` every worker writes its values to files in `PROMETHEUS_MULTIPROC_DIR`
(prometheus-client's multiprocess mode; serving.py makes the directory before the workers
start), and a scrape reads them all: counters and histograms are summed over the workers,
dead ones included, and gauges marked `livesum` over the live ones. Without that variable
(the tests' in-process servers) the values live in this process's default registry.

Labels never hold a raw path or anything a caller chose freely: a route is its template
(`/tiktok/oauth/login/{login_id}`), a method one of the standard ones.

Two gauges are read from the database at each scrape (`DatabaseGauges`), so every instance
reports the same fleet-wide figure: take their `max`, not their `sum`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from livegate.db.engine import Database
from livegate.db.models import PendingLogin, SessionKeyWrap, utcnow
from livegate.tiktok.errors import (
    AgeRestricted,
    PrivateRoom,
    RoomNotFound,
    SessionExpired,
    UpstreamBlocked,
    UpstreamTimeout,
    UserNotFound,
    UserOffline,
)
from livegate.vault import key_id

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "livegate_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "livegate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GRANTS_ISSUED = Counter(
    "livegate_grants_issued",
    "Tokens issued at the token endpoint, by grant type.",
    ["grant_type"],
)
GRANTS_REFUSED = Counter(
    "livegate_grants_refused",
    "Token requests refused, by grant type and OAuth error code.",
    ["grant_type", "reason"],
)
UPSTREAM_CALLS = Counter(
    "livegate_upstream_calls",
    "Calls to TikTok and the sign server, by upstream route and outcome.",
    ["route", "outcome"],
)
OPEN_RELAYS = Gauge(
    "livegate_open_relays",
    "WebSocket relays open now.",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "livegate_rate_limited",
    "Calls refused by a rate limit, by limit.",
    ["limit"],
)
WORKERS = Gauge(
    "livegate_workers",
    "Worker processes serving.",
    multiprocess_mode="livesum",
)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
UPSTREAM_OUTCOMES = frozenset({"ok", "refused", "timeout", "error", "cancelled"})
_CODE = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}")
OTHER = "other"


def _code(value: str) -> str:
    """A label value from code (an error code, a route name): kept only if it looks like one."""
    return value if _CODE.fullmatch(value) else OTHER


# -- the HTTP middleware's counting (observability.Observe) ---------------------------------

_http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    children = _http_children.get(key)
    if children is None:
        if method not in METHODS:
            method = OTHER
        children = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_DURATION.labels(route, method),
        )
        if len(_http_children) < 10_000:  # routes x methods x statuses: a few hundred
            _http_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


# -- helpers for the code that knows what happened -------------------------------------------


def grant_issued(grant_type: str) -> None:
    """A token response was sent (authorization_code, refresh_token)."""
    GRANTS_ISSUED.labels(grant_type if grant_type in GRANT_TYPES else OTHER).inc()


def grant_refused(grant_type: str | None, reason: str) -> None:
    """A token request was refused with the OAuth error code `reason` (invalid_grant...)."""
    kind = grant_type if grant_type in GRANT_TYPES else OTHER
    GRANTS_REFUSED.labels(kind, _code(reason)).inc()


def upstream_call(route: str, outcome: str) -> None:
    """One upstream call ended. `route` names the call, never its URL (`im/fetch`,
    `passport/get_qrcode`); `outcome` is one of UPSTREAM_OUTCOMES."""
    UPSTREAM_CALLS.labels(_code(route), outcome if outcome in UPSTREAM_OUTCOMES else OTHER).inc()


# What TikTok answers when it will not do what was asked; any other failure is an `error`.
_REFUSALS = (
    UpstreamBlocked,
    SessionExpired,
    AgeRestricted,
    PrivateRoom,
    UserOffline,
    UserNotFound,
    RoomNotFound,
)


def upstream_outcome(exc: BaseException | None) -> str:
    """How an upstream call ended, from what it raised (tiktok/errors.py's types, or none):
    `refused` is an answer TikTok gave (blocked, offline, not found, session ended...),
    `error` a call that got no usable answer."""
    if exc is None:
        return "ok"
    if isinstance(exc, (UpstreamTimeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, _REFUSALS):
        return "refused"
    return "error"


@contextmanager
def counting_upstream(route: str) -> Iterator[None]:
    """Counts the upstream call made inside it: `with metrics.counting_upstream("im/fetch"):`."""
    try:
        yield
    except BaseException as exc:
        upstream_call(route, upstream_outcome(exc))
        raise
    upstream_call(route, "ok")


def token_answered(grant_type: str | None, status: int, body: object) -> None:
    """The token endpoint answered: an issued token, or a refusal with its OAuth error code."""
    if status == 200:
        grant_issued(grant_type or "")
        return
    error = body.get("error") if isinstance(body, dict) else None
    grant_refused(grant_type, error if isinstance(error, str) else "unknown")


def relay_opened() -> None:
    OPEN_RELAYS.inc()


def relay_closed() -> None:
    OPEN_RELAYS.dec()


def rate_limited(limit: str) -> None:
    """A call was refused by the limit named `limit` (`connect:token`, `client-auth`...)."""
    RATE_LIMITED.labels(_code(limit)).inc()


def worker_started() -> None:
    WORKERS.set(1)


# -- what is read from the database at scrape time -------------------------------------------

# Sign-ins still waiting for the user or for TikTok; finished ones wait only for the purge.
_WAITING = ("consent", "new", "scanned", "verify", "confirmed")


class DatabaseGauges:
    """`livegate_pending_sign_ins{status}` and `livegate_vault_wrappings{key_id,configured}`,
    counted in the database when scraped. A database that does not answer leaves them out
    of that scrape (readyz says why)."""

    def __init__(self, database: Database, server_keys: Iterable[bytes]) -> None:
        self.database = database
        self.configured = [key_id(k) for k in server_keys]

    def collect(self) -> Iterator[Metric]:
        try:
            pending, wraps = self._counts()
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            return
        sign_ins = GaugeMetricFamily(
            "livegate_pending_sign_ins",
            "QR sign-ins not yet finished or expired, by status (fleet-wide, from the database).",
            labels=["status"],
        )
        for status in _WAITING:
            sign_ins.add_metric([status], pending.get(status, 0))
        yield sign_ins
        wrappings = GaugeMetricFamily(
            "livegate_vault_wrappings",
            "Session data keys wrapped under each server key (fleet-wide, from the database); "
            "configured=false: a key no longer in LIVEGATE_SECRET_KEYS still holds some.",
            labels=["key_id", "configured"],
        )
        for kid in self.configured:
            wrappings.add_metric([kid, "true"], wraps.pop(kid, 0))
        for kid, count in sorted(wraps.items()):
            wrappings.add_metric([kid, "false"], count)
        yield wrappings

    def _counts(self) -> tuple[dict[str, int], dict[str, int]]:
        waiting = (
            select(PendingLogin.status, func.count())
            .where(PendingLogin.expires_at > utcnow(), PendingLogin.status.in_(_WAITING))
            .group_by(PendingLogin.status)
        )
        by_key = select(SessionKeyWrap.server_key_id, func.count()).group_by(
            SessionKeyWrap.server_key_id
        )
        with self.database.engine.connect() as conn:
            pending = {str(s): int(n) for s, n in conn.execute(waiting)}
            wraps = {str(k): int(n) for k, n in conn.execute(by_key)}
        return pending, wraps


class _Forward:
    """This process's default registry, inside a scrape's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def scrape_registry(database_gauges: DatabaseGauges | None = None) -> CollectorRegistry:
    """A registry for one scrape: every worker's values (or this process's), plus the
    database gauges."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward(REGISTRY))
    if database_gauges is not None:
        registry.register(database_gauges)
    return registry


def render(database_gauges: DatabaseGauges | None = None) -> bytes:
    """The text exposition of one scrape (blocking: files and database)."""
    return generate_latest(scrape_registry(database_gauges))
