"""The webcast API's call limits: two categories, counted separately, `connect` (connection
starts: fetch and connect) and `calls` (everything else). Each credential presented (access
token, API key) has its own counters, identified by a digest prefix of the credential so that
counters never outlive it in a shared Redis. They count in the storage of livegate's one
limiter (`livegate/ratelimit.py`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter

from livegate import metrics
from livegate.config import Settings
from livegate.errors import LivegateError
from livegate.ratelimit import NAMESPACE
from livegate.webcast.errors import rate_limited
from livegate.webcast.schemas import LimitState

CONNECT = "connect"
CALLS = "calls"
_CREDENTIAL_NAMES = {"token": "access token", "api_key": "API key"}
_CATEGORY_NAMES = {CONNECT: "connection starts", CALLS: "calls"}
MAX_KEYS = 10_000  # counter keys kept built; beyond it they are built again


@dataclass(frozen=True)
class Credential:
    kind: str  # "token" | "api_key"
    ident: str  # a digest prefix: never the credential itself


class WebcastLimiter:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.items: dict[str, RateLimitItem] = {
            CONNECT: parse(settings.rate_limit_connect),
            CALLS: parse(settings.rate_limit_calls),
        }
        self.specs = {CONNECT: settings.rate_limit_connect, CALLS: settings.rate_limit_calls}
        self.expiries = {category: item.get_expiry() for category, item in self.items.items()}
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(self.storage)
        self._keys: dict[tuple[str, Credential], str] = {}

    async def hit(self, category: str, credentials: list[Credential]) -> None:
        """Count one hit on each credential; raise the 429 answer when one is exhausted.

        What FixedWindowRateLimiter.hit does (`incr(key) <= amount`), with each counter's key
        built once instead of on every call.
        """
        item = self.items[category]
        expiry = self.expiries[category]
        for cred in credentials:
            key = self._keys.get((category, cred))
            if key is None:
                key = self._key(category, cred)
            if await self.storage.incr(key, expiry) > item.amount:
                raise await self._refusal(category, cred, item)

    def _key(self, category: str, cred: Credential) -> str:
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
        key = self.items[category].key_for(NAMESPACE, category, cred.kind, cred.ident)
        self._keys[(category, cred)] = key
        return key

    async def _refusal(self, category: str, cred: Credential, item: RateLimitItem) -> LivegateError:
        stats = await self.limiter.get_window_stats(
            item, NAMESPACE, category, cred.kind, cred.ident
        )
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        metrics.rate_limited(f"{category}:{cred.kind}")
        message = (
            f"Too many {_CATEGORY_NAMES[category]} for this {_CREDENTIAL_NAMES[cred.kind]} "
            f"(limit {self.specs[category]}); retry in {retry} s, or ask the gateway's "
            "operator for a higher limit."
        )
        return rate_limited(
            message,
            label=f"{category}:{cred.kind}",
            retry=retry,
            reset=math.ceil(stats.reset_time),
            limit=item.amount,
        )

    async def state(self, credentials: list[Credential]) -> list[LimitState]:
        out = []
        for cred in credentials:
            for category, item in self.items.items():
                stats = await self.limiter.get_window_stats(
                    item, NAMESPACE, category, cred.kind, cred.ident
                )
                out.append(
                    LimitState(
                        credential=cred.kind,
                        category=category,
                        limit=self.specs[category],
                        max=item.amount,
                        remaining=int(stats.remaining),
                        reset_at=math.ceil(stats.reset_time),
                    )
                )
        return out
