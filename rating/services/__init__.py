"""Leaderboard writes: snapshots from the counts (live) and the periodic full recompute.

Split by concern: ``snapshots`` (fit, store, push; the live refresh), ``recompute`` (the full
recompute and the count rebuild from votes already read), ``anomalies`` (anomalous-voter
flags), ``sampling`` (active-sampling weights), ``runs`` (the periodic jobs' lock and
metrics). Rating computes; every write to an arena table goes through an ``arena.services``
function (``votes_flag``, ``sampling_weights_replace``, ``battles_import_create``, ...) or
``arena.counts``.
"""

from rating.services.anomalies import votes_flag_anomalous
from rating.services.recompute import counts_rebuild_from, leaderboard_recompute_full
from rating.services.sampling import sampling_weights_write
from rating.services.snapshots import (
    KEEP_SNAPSHOTS,
    LEADERBOARD_GROUP,
    MEAN_SCORE,
    leaderboard_group,
    leaderboard_refresh,
    snapshots_push,
    snapshots_write,
)

__all__ = [
    "KEEP_SNAPSHOTS",
    "LEADERBOARD_GROUP",
    "MEAN_SCORE",
    "counts_rebuild_from",
    "leaderboard_group",
    "leaderboard_recompute_full",
    "leaderboard_refresh",
    "sampling_weights_write",
    "snapshots_push",
    "snapshots_write",
    "votes_flag_anomalous",
]
