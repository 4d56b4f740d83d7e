"""Online Elo replay (FastChat `compute_elo`): order-dependent, informational only."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rating.engine.data import HALF_SCORE, InvalidVoteError, parse_outcomes


def online_elo(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    *,
    n_models: int,
    k: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    initial: float = 1000.0,
) -> NDArray[np.float64]:
    """Replay votes in the given order; returns the final rating per model.

    E_a = 1 / (1 + base^((R_b - R_a) / scale)); R_a += k (S_a - E_a); R_b -= k (S_a - E_a),
    with S_a = 1 / 0 / 0.5 for A win / B win / tie or both bad.
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    s = HALF_SCORE[parse_outcomes(outcome)]
    if not (a.shape == b.shape == s.shape):
        raise InvalidVoteError("model_a, model_b and outcome must have equal length")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_models):
        raise InvalidVoteError(f"model index outside [0, {n_models})")
    rating = [float(initial)] * n_models
    # A plain loop: each update depends on the previous one, so it cannot be vectorised.
    for ia, ib, sa in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        ra, rb = rating[ia], rating[ib]
        delta = k * (sa - 1.0 / (1.0 + base ** ((rb - ra) / scale)))
        rating[ia] = ra + delta
        rating[ib] = rb - delta
    return np.array(rating)
