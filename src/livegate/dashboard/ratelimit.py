"""A small rate-limit helper over the `limits` library: memory by default, Redis when configured.

limiter = RateLimiter.from_settings(settings)
if not limiter.hit("10/minute", "login", ip, email): ...  # refused
"""

from __future__ import annotations

import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from livegate.config import Settings


@lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


class RateLimiter:
    def __init__(self, storage_url: str = "memory://") -> None:
        self.storage = storage_from_string(storage_url)
        self.limiter = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.redis_url or "memory://")

    def hit(self, limit: str, *keys: str) -> bool:
        """Count one hit; False when the limit is already reached (the caller refuses)."""
        return bool(self.limiter.hit(_item(limit), *keys))

    def test(self, limit: str, *keys: str) -> bool:
        """Whether one more hit would be allowed, without counting it."""
        return bool(self.limiter.test(_item(limit), *keys))

    def reset_after(self, limit: str, *keys: str) -> int:
        """Seconds until the window frees a slot (for Retry-After)."""
        stats = self.limiter.get_window_stats(_item(limit), *keys)
        return max(1, int(stats.reset_time - time.time()))
