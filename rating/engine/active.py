"""Active pair sampling: the Chatbot Arena paper's rule (eq. 9) applied to BT score intervals.

Eq. 9 samples pair a with probability proportional to the interval shrinkage that one more vote
on it buys, sqrt(S_aa / n_a) - sqrt(S_aa / (n_a + 1)). Our intervals are on BT scores, so the
shrinkage is computed exactly for them: one more vote on (i, j) adds p q (e_i - e_j)(...)^T to
the Fisher information H, and by Sherman-Morrison the covariance V = H^-1 becomes
V - h V x x^T V / (1 + h x^T V x). The weight of a pair is the summed shrinkage of every
model's standard error, sum_m sqrt(V_mm) - sqrt(V'_mm), normalised over all pairs.

What counts is what voters were shown: given `shown` (battles per pair), the information of a
pair is computed from its battles, not from the votes that counted. Otherwise a model whose
votes are excluded (its answers name it, so the votes are flagged) looks unmeasured forever,
gets the most weight, and is drawn in nearly every battle, whose votes are excluded again.

`sharpness` raises the shrinkage to a power before normalising: 1 is the paper's proportional
rule; larger values move towards always taking the single best pair (the bench shows 4 needs
fewer votes to reach a target interval width, at the cost of less exploration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from rating.engine.bt import laplacian
from rating.engine.data import PairTable

PRIOR = 1e-2  # prior precision so that models without votes have a finite (wide) variance


@dataclass(frozen=True)
class PairWeights:
    """Sampling probability for every unordered pair (i < j); `weight` sums to 1."""

    i: NDArray[np.int64]
    j: NDArray[np.int64]
    weight: NDArray[np.float64]

    def as_matrix(self, n_models: int) -> NDArray[np.float64]:
        """Symmetric (m, m) matrix with each pair's weight split over (i, j) and (j, i)."""
        out = np.zeros((n_models, n_models))
        out[self.i, self.j] = self.weight / 2
        out[self.j, self.i] = self.weight / 2
        return out


def active_sampling_weights(
    table: PairTable,
    theta: NDArray[np.float64],
    *,
    sharpness: float = 1.0,
    prior: float = PRIOR,
    shown: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> PairWeights:
    """Weights over all m (m - 1) / 2 pairs from current votes and fitted strengths.

    `theta` are natural log-odds strengths (NaN for unrated models is treated as 0). Pairs
    involving models with few votes (or, with `shown`, few battles) or near-equal strengths get
    the most weight. `shown` is (i, j, battles): how many battles each pair of model indices
    was shown in, whatever became of their votes; it replaces the table's vote counts.
    """
    m = table.n_models
    ii, jj = np.triu_indices(m, k=1)
    if m < 2:
        return PairWeights(ii, jj, np.zeros(0))
    th = np.nan_to_num(np.asarray(theta, dtype=np.float64))
    if shown is None:
        pi, pj, n = table.i, table.j, table.weight.sum(1)
    else:
        pi, pj = (np.asarray(x, dtype=np.int64) for x in shown[:2])
        n = np.asarray(shown[2], dtype=np.float64)
    p_obs = expit(th[pi] - th[pj])
    info = laplacian(pi, pj, n * p_obs * (1 - p_obs), m)
    cov = np.linalg.inv(info + prior * np.eye(m))
    p = expit(th[ii] - th[jj])
    h = p * (1 - p)
    vx = cov[:, ii] - cov[:, jj]  # (m, pairs)
    quad = cov[ii, ii] + cov[jj, jj] - 2 * cov[ii, jj]
    diag = np.diag(cov)[:, None]
    new_diag = np.maximum(diag - h * vx * vx / (1 + h * quad), 0.0)
    gain = (np.sqrt(diag) - np.sqrt(new_diag)).sum(axis=0)
    gain = np.maximum(gain, 0.0)
    gain = (gain / gain.max()) ** sharpness if gain.max() > 0 else gain
    total = gain.sum()
    weight = gain / total if total > 0 else np.full(gain.size, 1.0 / gain.size)
    return PairWeights(ii, jj, weight)
