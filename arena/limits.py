"""Fixed-window rate limits: Redis ``INCR`` (atomic across processes) in production, the local
cache on the embedded default. Several limits are checked in one Redis round trip.

One API: ``check(Limit(bucket, identity, limit, window), ...)`` counts one event against every
limit given and raises ``RateLimited`` when any is exceeded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` events per ``window`` seconds for ``identity`` in ``bucket``; inactive
    (never counted) when ``limit`` is not positive or there is no identity."""

    bucket: str
    identity: str
    limit: int
    window: int = 60

    @property
    def active(self) -> bool:
        return self.limit > 0 and bool(self.identity)

    def key(self, now: float) -> str:
        return f"rl:{self.bucket}:{self.identity}:{int(now // self.window)}"


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    # One client for the process (a client per call costs more than the INCR itself).
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _prefix() -> str:
    return str(settings.CACHES["default"].get("KEY_PREFIX", ""))


def _counts(limits: list[Limit], now: float) -> list[int]:
    if settings.REDIS_URL:
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        for lim in limits:
            key = f"{_prefix()}:{lim.key(now)}"
            pipe.incr(key)
            pipe.expire(key, lim.window + 5, nx=True)
        results = pipe.execute()
        return [int(n) for n in results[0::2]]
    counts = []
    for lim in limits:
        key = lim.key(now)
        if cache.add(key, 1, timeout=lim.window + 5):
            counts.append(1)
            continue
        try:
            counts.append(cache.incr(key))
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=lim.window + 5)
            counts.append(1)
    return counts


def check(*limits: Limit) -> None:
    """Count one event against every limit; raise RateLimited if any is exceeded."""
    active = [lim for lim in limits if lim.active]
    if not active:
        return
    now = time.time()
    for lim, count in zip(active, _counts(active, now), strict=True):
        if count > lim.limit:
            retry = int(lim.window - now % lim.window) + 1
            raise RateLimited(
                f"Too many requests; try again in {retry} s.", extra={"retry_after": retry}
            )
