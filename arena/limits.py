"""Fixed-window rate limits in the cache (Redis in production: ``INCR`` is atomic across processes)."""

from __future__ import annotations

import time

from django.core.cache import cache

from config.errors import RateLimited


def hit(bucket: str, identity: str, *, limit: int, window: int) -> None:
    """Count one event for ``identity``; raise RateLimited once it passes ``limit`` per ``window`` s."""
    if limit <= 0 or not identity:
        return
    slot = int(time.time() // window)
    key = f"rl:{bucket}:{identity}:{slot}"
    if cache.add(key, 1, timeout=window + 5):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 5)
            count = 1
    if count > limit:
        retry = int(window - time.time() % window) + 1
        raise RateLimited(
            f"Too many requests; try again in {retry} s.", extra={"retry_after": retry}
        )
