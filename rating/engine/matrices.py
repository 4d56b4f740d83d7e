"""Pairwise matrices: predicted win rate, observed win rate, battle counts."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from rating.engine.data import PairTable


def predicted_win_rate(theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """P[i, j] = P(i beats j) = sigmoid(theta_i - theta_j) (ties counted as half); diagonal NaN.

    Entries involving a NaN strength (unrated model) are NaN.
    """
    p = expit(theta[:, None] - theta[None, :])
    np.fill_diagonal(p, np.nan)
    return p


def battle_counts(table: PairTable) -> NDArray[np.int64]:
    """Symmetric (m, m) matrix of votes between each pair (any outcome, either position)."""
    m = table.n_models
    n = np.zeros((m, m), dtype=np.int64)
    total = table.votes.sum(axis=1)
    n[table.i, table.j] = total
    n[table.j, table.i] = total
    return n


def observed_win_rate(table: PairTable) -> NDArray[np.float64]:
    """W[i, j] = (weighted wins of i over j + half the ties) / weighted votes; NaN if none."""
    m = table.n_models
    wins = np.full((m, m), np.nan)
    total = table.weight.sum(axis=1)
    score_i = table.weight[:, 0] + 0.5 * table.weight[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(total > 0, score_i / np.where(total > 0, total, 1.0), np.nan)
    wins[table.i, table.j] = rate
    wins[table.j, table.i] = 1.0 - rate
    return wins
