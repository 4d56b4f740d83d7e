"""Voters whose votes do not count: the sequential anomaly test and the position-lock test over
every anonymous vote; arena stores the flags."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from arena.models import Vote
from arena.services import votes_flag
from rating.engine import detect_anomalous_voters, detect_position_locked_voters
from rating.selectors import VoteArrays


def anomaly_alpha() -> float:
    """Test level of both voter tests: ``settings.RATING_ANOMALY_ALPHA`` (default 0.01)."""
    return float(getattr(settings, "RATING_ANOMALY_ALPHA", 0.01))


def votes_flag_anomalous(*, arrays: VoteArrays) -> int:
    """Run the sequential voter test over every anonymous vote; flag the flagged voters' votes.

    Returns how many votes got the ``anomalous_voter`` flag now (``arrays`` is updated to
    match). Flags are never removed here: an operator clears them in the admin. The test
    level is `anomaly_alpha`.
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
        alpha=anomaly_alpha(),
        seed=0,
    )
    target = rated & np.isin(arrays.voter, np.array(report.flagged, dtype=np.int64))
    return _flag(arrays, target & ~arrays.anomalous, Vote.Flag.ANOMALOUS_VOTER.value)


def votes_flag_position_locked(*, arrays: VoteArrays) -> int:
    """Flag every anonymous vote of the voters whose decisive votes are locked on one side
    (``rating.engine.position``: a binomial test of each voter's A share against everyone
    else's, Holm-corrected at `anomaly_alpha`). Returns how many votes gained the
    ``position_locked`` flag (``arrays`` is updated to match)."""
    rated = arrays.anonymous
    if not rated.any():
        return 0
    every = bool(rated.all())
    report = detect_position_locked_voters(
        arrays.voter if every else arrays.voter[rated],
        arrays.outcome if every else arrays.outcome[rated],
        alpha=anomaly_alpha(),
    )
    target = rated & np.isin(arrays.voter, np.array(report.flagged, dtype=np.int64))
    return _flag(arrays, target, Vote.Flag.POSITION_LOCKED.value)


def _flag(arrays: VoteArrays, target: np.ndarray, flag: str) -> int:
    """Add ``flag`` to the votes where ``target`` is true (through arena), and to ``arrays``."""
    ids = arrays.vote_id[target]
    if not ids.size:
        return 0
    changed = votes_flag(vote_ids=ids.tolist(), flag=flag)
    arrays.mark(target, flag)
    return changed
