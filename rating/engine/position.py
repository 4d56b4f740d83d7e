"""Position-locked voters: whose decisive votes go to one side (A or B) far beyond the crowd's.

The sequential anomaly test (`rating.engine.anomaly`) compares each vote with other voters'
votes on the same pair, so a voter who always clicks "A" (sides are random, so half the time
for the weaker model) looks like noise there and is not caught. This test looks at the side:

* Only decisive votes count (A or B won); a tie or both-bad vote says nothing about position.
* For a voter with n decisive votes, k of them for A, the null hypothesis is "this voter picks
  A with a probability within ``margin`` of the population's share p0" (p0 from every other
  voter's decisive votes). Its exact binomial p-value is 2 min(P(K >= k | n, p0 + margin),
  P(K <= k | n, p0 - margin)). The margin (0.25 by default: a voter is "locked" when at least
  three quarters of their decisive votes go to one side) keeps honest voters with a mild
  habit, whose many votes would otherwise make a small bias significant, from being flagged.
* Voters are tested only from ``min_votes`` decisive votes on: the smallest count at which even
  a perfectly locked voter, tested alone, reaches ``alpha`` (19 at alpha 0.01, margin 0.25).
  Fewer votes cannot be flagged whatever they are, so testing them would only weaken the
  multiple-testing correction for everyone else.
* Holm's step-down procedure over the tested voters: the chance of flagging any honest voter is
  at most ``alpha`` however many voters there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binom

from rating.engine.data import InvalidVoteError, Outcome, parse_outcomes

MARGIN = 0.25


@dataclass(frozen=True)
class PositionReport:
    """Flagged voter ids (as given, in first-seen order), the p-value of every tested voter,
    the minimum of decisive votes for a test and the population's share of A among decisive
    votes."""

    flagged: list[object]
    p_values: dict[object, float]
    min_votes: int
    population_share: float


def smallest_testable(alpha: float, share: float, margin: float) -> int:
    """Fewest decisive votes with which a voter who always picks one side can be flagged."""
    base = max(min(share + margin, 1.0), min(1.0 - share + margin, 1.0))
    if base >= 1.0:
        return 1 << 30  # the margin covers every share: nobody can be shown to be locked
    return max(1, math.ceil(math.log(alpha / 2) / math.log(base)))


def detect_position_locked_voters(
    voter: ArrayLike,
    outcome: ArrayLike,
    *,
    alpha: float = 0.01,
    margin: float = MARGIN,
    min_votes: int | None = None,
) -> PositionReport:
    """Flag voters whose share of A among their decisive votes is locked far from the crowd's.

    ``voter`` and ``outcome`` have one entry per vote (outcome labels or codes as
    `parse_outcomes` reads them). ``min_votes`` None means `smallest_testable`.
    """
    voters = np.asarray(voter)
    codes = parse_outcomes(outcome)
    if voters.shape[0] != codes.size:
        raise InvalidVoteError("voter and outcome must have equal length")
    decisive = codes <= Outcome.B
    ids, first, vidx = np.unique(voters[decisive], return_index=True, return_inverse=True)
    if not ids.size:
        return PositionReport([], {}, min_votes or 1, 0.5)
    n = np.bincount(vidx, minlength=ids.size)
    k = np.bincount(vidx, (codes[decisive] == Outcome.A).astype(np.float64), ids.size)
    share = float(k.sum() / n.sum())
    others = n.sum() - n
    # Leave-one-out share: a heavy locked voter must not drag the population towards itself.
    p0 = np.divide(k.sum() - k, others, out=np.full(ids.size, 0.5), where=others > 0)
    p_a = binom.sf(k - 1, n, np.minimum(p0 + margin, 1.0))  # P(K >= k)
    p_b = binom.cdf(k, n, np.maximum(p0 - margin, 0.0))  # P(K <= k)
    p_val = np.minimum(1.0, 2 * np.minimum(p_a, p_b))
    need = smallest_testable(alpha, share, margin) if min_votes is None else min_votes
    tested = np.flatnonzero(n >= need)
    hit = tested[_holm(p_val[tested], alpha)]
    order = hit[np.argsort(first[hit], kind="stable")]  # first-seen order
    return PositionReport(
        flagged=[ids[v].item() for v in order],
        p_values={ids[v].item(): float(p_val[v]) for v in tested},
        min_votes=need,
        population_share=share,
    )


def _holm(p: NDArray[np.float64], alpha: float) -> NDArray[np.bool_]:
    """Holm's step-down rejections: the i-th smallest p-value (0-based) of T is rejected while
    every smaller one is and it is at most alpha / (T - i)."""
    t = p.size
    order = np.argsort(p, kind="stable")
    passes = p[order] <= alpha / (t - np.arange(t))
    stop = int(np.argmin(passes)) if not passes.all() else t
    reject = np.zeros(t, dtype=bool)
    reject[order[:stop]] = True
    return reject
