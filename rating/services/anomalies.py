"""Anomalous voters: the engine's sequential test over every anonymous vote; arena stores the
flags."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from arena.models import Vote
from arena.services import votes_flag
from rating.engine import detect_anomalous_voters
from rating.selectors import VoteArrays


def votes_flag_anomalous(*, arrays: VoteArrays) -> int:
    """Run the sequential voter test over every anonymous vote; flag the flagged voters' votes.

    Returns how many votes got the ``anomalous_voter`` flag now (``arrays`` is updated to
    match). Flags are never removed here: an operator clears them in the admin. The test
    level is ``settings.RATING_ANOMALY_ALPHA`` (default 0.01).
    """
    rated = arrays.anonymous
    if not rated.any():
        return 0
    every = bool(rated.all())
    report = detect_anomalous_voters(
        arrays.voter if every else arrays.voter[rated],
        arrays.model_a if every else arrays.model_a[rated],
        arrays.model_b if every else arrays.model_b[rated],
        arrays.outcome if every else arrays.outcome[rated],
        alpha=float(getattr(settings, "RATING_ANOMALY_ALPHA", 0.01)),
        seed=0,
    )
    if not report.flagged:
        return 0
    bad = np.array(report.flagged, dtype=np.int64)
    target = rated & np.isin(arrays.voter, bad) & ~arrays.anomalous
    ids = arrays.vote_id[target]
    if not ids.size:
        return 0
    votes_flag(vote_ids=ids.tolist(), flag=Vote.Flag.ANOMALOUS_VOTER.value)
    arrays.anomalous[target] = True
    arrays.flagged[target] = True
    return int(ids.size)
