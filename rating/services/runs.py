"""What the two periodic leaderboard jobs share: their metrics and the lock that keeps one run
of each at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache
from prometheus_client import Counter, Histogram

RECOMPUTES = Counter("pa_rating_recomputes_total", "Leaderboard recomputes", ["kind", "result"])
RECOMPUTE_SECONDS = Histogram(
    "pa_rating_recompute_seconds", "Leaderboard recompute run time", ["kind"]
)
SNAPSHOTS_WRITTEN = Counter("pa_rating_snapshots_total", "Leaderboard snapshots written", ["kind"])
COUNT_DRIFT = Counter("pa_rating_count_drift_total", "Vote-count drift corrected by rebuilds")


@contextmanager
def run_lock(name: str, timeout: int) -> Iterator[bool]:
    """A cache lock so overlapping periodic runs (slow worker, two beats) skip, not pile up.

    Yields whether this run holds the lock; the lock expires after ``timeout`` seconds even if
    the process dies holding it.
    """
    key = f"rating:lock:{name}"
    got = cache.add(key, "1", timeout=timeout)
    try:
        yield bool(got)
    finally:
        if got:
            cache.delete(key)
