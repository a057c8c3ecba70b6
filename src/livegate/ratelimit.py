"""livegate's one rate limit storage and its limiter (`Limiter`), with the `limits` library:
memory storage by default, Redis when `settings.redis_url` is set, so that every process
counts in one place.

Attempts that could guess a secret (dashboard sign-ins, client secrets, API keys) and
sign-ups: counted per client address (`client_address`), see `Limiter`. The webcast API's
per-credential call limits (`webcast/ratelimit.py`) count in the same storage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import HTTPConnection

from livegate import metrics
from livegate.config import Settings
from livegate.secrets import digest

# Every counter's key starts with it (a shared Redis may hold other applications' keys).
NAMESPACE = "livegate-webcast"


class SweepingMemoryStorage(MemoryStorage):
    """limits' in-memory storage, with a lean `incr` that sweeps expired windows at most once
    per `SWEEP_EVERY`.

    limits 5.8's async MemoryStorage starts a task after nearly every hit that walks every
    key it holds: with many live credentials that is O(keys) work per call, and even with
    one key it showed in a warm fetch's profile. The sweep only frees memory: a fixed
    window's `get` already drops its own key once expired, so counting is unchanged.

    `incr` does what MemoryStorage.incr does for a fixed window, in one plain coroutine.
    limits wraps each storage method of every subclass in an error-mapping coroutine
    (`Storage.__init_subclass__`), so a hit here went through six nested coroutines and an
    asyncio.Lock; on one event loop with no await inside, the lock guards nothing. It was
    the largest single step livegate took before the upstream call (docs/benchmarks.md).
    """

    SWEEP_EVERY = 1.0
    _last_sweep = 0.0

    async def lean_incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        if self.expirations.get(key, 0) <= now:  # the window is over: a new one starts
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)
        if time.monotonic() - self._last_sweep >= self.SWEEP_EVERY:
            await self._MemoryStorage__schedule_expiry()
        count = self.storage[key] + amount
        self.storage[key] = count
        if count == amount:
            self.expirations[key] = now + expiry
        return count

    # Overrides MemoryStorage's private `__schedule_expiry` (name-mangled);
    # tests/test_webcast_limits.py checks that the hook still exists in the pinned limits.
    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.SWEEP_EVERY:
            return
        self._last_sweep = now
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]  # name-mangled


# Set after the class is made, so that limits' __init_subclass__ does not wrap it.
# mypy forbids assigning to a method; that assignment is the point here.
SweepingMemoryStorage.incr = SweepingMemoryStorage.lean_incr  # type: ignore[method-assign,assignment]  # deliberate


def make_storage(settings: Settings) -> Storage:
    if settings.redis_url:
        url = settings.redis_url
        if not url.startswith("async+"):
            url = "async+" + url
        storage = storage_from_string(url, implementation="redispy")
        if not isinstance(storage, Storage):
            raise TypeError(f"{url!r} names a synchronous limits storage; livegate needs async")
        return storage
    return SweepingMemoryStorage()


@dataclass(frozen=True)
class Rule:
    """One counter of attempts: its limit (`10/minute`) and what it counts (a kind, then who)."""

    limit: str
    keys: tuple[str, ...]


def client_address(conn: HTTPConnection) -> str:
    """The caller's address. The app's outermost middleware (`app.py`, uvicorn's
    ProxyHeadersMiddleware) has already replaced the TCP peer with what X-Forwarded-For says
    when, and only when, the peer is one of `trusted_proxies`: nothing else in livegate reads
    forwarded headers."""
    return conn.client.host if conn.client else "unknown"


def _who(value: str) -> str:
    # An email or client_id as a counter key: fixed length, no separator, not in the clear.
    return digest(value)[:24]


class Limiter:
    """livegate's one rate limiter: every limit counts in one storage.

    Attempts that could guess a secret (dashboard passwords, client secrets, API keys) are
    counted only when they fail, and looked at before the next attempt's credential is: a
    source over its limit is refused without its credential being checked, so it learns
    nothing more, while successful calls never use up a limit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = make_storage(settings)
        self.window = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}
        for spec in (
            settings.rate_limit_login,
            settings.rate_limit_failures,
            settings.rate_limit_signup,
        ):
            self._item(spec)  # a malformed setting fails at start, not on the first attempt

    # -- the rules ------------------------------------------------------------------------

    def sign_in(self, address: str, email: str) -> list[Rule]:
        """Failed dashboard sign-ins: per address, whatever the email, and per address and
        email. Nothing counts per email alone: such a counter is a lock-out anyone who knows
        the owner's email could trigger from anywhere, while guessing from many addresses
        is already held to each address's limit."""
        return self._per_account("sign-in", address, email.strip().lower())

    def client_auth(self, address: str, client_id: str) -> list[Rule]:
        """Failed client authentications at the token, revocation and introspection
        endpoints: per address, and per address and client_id. Nothing per client_id alone:
        client_ids are public, so such a counter would let anyone shut an app out of its
        token endpoint, and client secrets are too long to guess from any number of
        addresses."""
        return self._per_account("client-auth", address, client_id)

    def api_key(self, address: str) -> list[Rule]:
        """Unknown or revoked API keys on /webcast, per address."""
        return [Rule(self.settings.rate_limit_failures, (NAMESPACE, "api-key", address))]

    def sign_up(self, address: str) -> Rule:
        """Dashboard sign-ups, successful or not, per address."""
        return Rule(self.settings.rate_limit_signup, (NAMESPACE, "sign-up", address))

    def account_sign_in(self, address: str) -> Rule:
        """QR sign-ins started on /account, per address."""
        return Rule(self.settings.rate_limit_login, (NAMESPACE, "account-sign-in", address))

    def _per_account(self, kind: str, address: str, account: str) -> list[Rule]:
        rules = [Rule(self.settings.rate_limit_failures, (NAMESPACE, kind, address))]
        if account:  # an attempt that names no account guesses nobody's secret
            key = (NAMESPACE, kind, address, _who(account))
            rules.append(Rule(self.settings.rate_limit_login, key))
        return rules

    # -- counting -------------------------------------------------------------------------

    async def retry_after(self, rules: list[Rule]) -> int | None:
        """Seconds until every rule allows one more attempt; None when all do. Counts nothing."""
        waits = [
            await self._refused(rule)
            for rule in rules
            if not await self.window.test(self._item(rule.limit), *rule.keys)
        ]
        return max(waits) if waits else None

    async def failed(self, rules: list[Rule]) -> None:
        """Count one failed attempt on each rule."""
        for rule in rules:
            await self.window.hit(self._item(rule.limit), *rule.keys)

    async def hit(self, rule: Rule) -> int | None:
        """Count one attempt; when the rule is already exhausted, nothing is counted and the
        answer is the seconds to wait."""
        if await self.window.hit(self._item(rule.limit), *rule.keys):
            return None
        return await self._refused(rule)

    async def _refused(self, rule: Rule) -> int:
        metrics.rate_limited(rule.keys[1] if len(rule.keys) > 1 else rule.keys[0])
        return await self._wait(rule)

    async def _wait(self, rule: Rule) -> int:
        stats = await self.window.get_window_stats(self._item(rule.limit), *rule.keys)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _item(self, spec: str) -> RateLimitItem:
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = parse(spec)
        return item
