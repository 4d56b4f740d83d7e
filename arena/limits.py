"""Fixed-window rate limits: Redis ``INCR`` (atomic across processes) in production, the local
cache on the embedded default. Several limits are checked in one Redis round trip.

One API: ``check(Limit(bucket, identity, limit, window), ..., fail_open=...)`` counts one event
against every limit given and raises ``RateLimited`` when any is exceeded.

When Redis does not answer, the caller's ``fail_open`` decides (each call site states its
direction and why):

- fail closed (the default): ``ArenaUnavailable`` (503). Starting a battle or a turn does this:
  the generation it starts needs Redis anyway (broker, channel layer, partial text), so refusing
  it creates nothing that could never finish.
- fail open: the event is allowed and not counted, with a warning in the log (at most one per
  ``WARN_EVERY`` seconds). Voting does this: a vote needs only the database and is the product;
  a vote is one per battle and battles cannot be started while Redis is down, so the votes that
  go uncounted are bounded by the battles already waiting for one.

Nothing is remembered in the process: the next check after Redis is back uses it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import ApplicationError, RateLimited

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
WARN_EVERY = 10.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class ArenaUnavailable(ApplicationError):
    """A dependency the arena needs to start work (Redis, the broker) is down: nothing was
    created; the voter may try again in ``extra["retry_after"]`` seconds."""

    code = "arena_unavailable"
    status = 503

    def __init__(
        self,
        message: str = (
            "The arena is temporarily unavailable: a service it needs is not answering. "
            "Nothing was started; please try again in a few seconds."
        ),
    ) -> None:
        super().__init__(message, extra={"retry_after": RETRY_AFTER_SECONDS})


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

    # One client for the process (a client per call costs more than the INCR itself). The short
    # timeouts bound what a request pays when Redis is down; connection refused costs ~1 ms.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _prefix() -> str:
    return str(settings.CACHES["default"].get("KEY_PREFIX", ""))


def _redis_counts(limits: list[Limit], now: float) -> list[int]:
    pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
    for lim in limits:
        key = f"{_prefix()}:{lim.key(now)}"
        pipe.incr(key)
        pipe.expire(key, lim.window + 5, nx=True)
    results = pipe.execute()
    return [int(n) for n in results[0::2]]


def _local_counts(limits: list[Limit], now: float) -> list[int]:
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


_last_warning = 0.0


def _warn_uncounted(buckets: list[str], exc: BaseException) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY:
        _last_warning = now
        log.warning(
            "rate limits unavailable (%s); allowing without counting",
            type(exc).__name__,
            extra={"buckets": buckets},
        )


def check(*limits: Limit, fail_open: bool = False) -> None:
    """Count one event against every limit; raise RateLimited if any is exceeded.

    When Redis does not answer: ``fail_open`` allows the event uncounted (logged), otherwise
    ``ArenaUnavailable`` is raised (see the module doc for which caller chooses which)."""
    active = [lim for lim in limits if lim.active]
    if not active:
        return
    now = time.time()
    if not settings.REDIS_URL:
        counts = _local_counts(active, now)
    else:
        try:
            counts = _redis_counts(active, now)
        except REDIS_DOWN as exc:
            if not fail_open:
                raise ArenaUnavailable() from exc
            _warn_uncounted([lim.bucket for lim in active], exc)
            return
    for lim, count in zip(active, counts, strict=True):
        if count > lim.limit:
            retry = int(lim.window - now % lim.window) + 1
            raise RateLimited(
                f"Too many requests; try again in {retry} s.", extra={"retry_after": retry}
            )
