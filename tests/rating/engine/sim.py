"""Simulated arenas with known strengths (shared by the engine tests and benches)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def simulate_votes(
    theta: NDArray[np.float64],
    n_votes: int,
    rng: np.random.Generator,
    *,
    tie_share: float = 0.3,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Uniformly drawn pairs; outcome codes 0 = A won, 1 = B won, 2 = tie, 3 = both bad.

    Ties are drawn so that E[score of A] = sigmoid(theta_a - theta_b) exactly, i.e. the
    half-win BT model is correctly specified: P(tie) = tie_share * 2 min(p, 1 - p),
    P(A won) = p - P(tie) / 2. Half of the ties are labelled both bad.
    """
    m = theta.size
    a = rng.integers(0, m, n_votes)
    b = (a + rng.integers(1, m, n_votes)) % m
    p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
    tie = tie_share * 2 * np.minimum(p, 1 - p)
    u = rng.random(n_votes)
    outcome = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))
    both_bad = (outcome == 2) & (rng.random(n_votes) < 0.5)
    return a, b, np.where(both_bad, 3, outcome)
