"""Anomalous-voter detection: the Chatbot Arena paper's sequential test (section 5.1, App. C).

For each vote a conformal p-value compares its outcome with the other voters' votes on the same
pair; Fisher's combination M_j = -2 sum_{i<=j} log p_i is checked at `looks` randomly drawn
positions j in [1, max_look], and a voter is flagged when M_j >= chi2_{2j}(1 - alpha / looks)
at any look (Bonferroni over the looks). The looks are random so voters cannot game them.

Deviation from the paper: the paper ranks outcomes by their value, p = P(h >= H), which only
catches votes unusually favourable to whichever model was shown first. Here the
nonconformity score is the rarity of the outcome class (i won / tie or both bad / j won) among
the reference votes: p = (1 + #{reference votes whose class is at most as frequent}) /
(n_ref + 1). A vote for the outcome that most others chose gets p = 1, a vote for an outcome
nobody else chose gets 1 / (n_ref + 1), in either position. It is a conformal p-value, so it
stays valid under exchangeability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from rating.engine.data import InvalidVoteError, Outcome, parse_outcomes


@dataclass(frozen=True)
class AnomalyReport:
    """`flagged` lists voter ids (as given) in first-seen order; `p_values` is per vote."""

    flagged: list[object]
    p_values: NDArray[np.float64]
    looks: dict[object, list[int]]


def detect_anomalous_voters(
    voter: ArrayLike,
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    *,
    alpha: float = 0.1,
    looks: int = 5,
    max_look: int = 100,
    seed: int | None = 0,
) -> AnomalyReport:
    """Flag voters whose votes disagree with everyone else's more than chance allows.

    Votes must be in time order (each voter's sequence is read in that order). The reference
    for a vote is every other voter's votes on the same unordered pair.
    """
    voters = np.asarray(voter)
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    o = parse_outcomes(outcome)
    n = a.size
    if not (voters.shape[0] == n == b.size == o.size):
        raise InvalidVoteError("voter, model_a, model_b and outcome must have equal length")
    if n == 0:
        return AnomalyReport([], np.zeros(0), {})
    ids, first, vidx = np.unique(voters, return_index=True, return_inverse=True)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    a_lo = a == lo
    # Outcome class seen from the lower index: 0 = lower lost, 1 = tie / both bad, 2 = won.
    won = ((o == Outcome.A) & a_lo) | ((o == Outcome.B) & ~a_lo)
    lost = ((o == Outcome.B) & a_lo) | ((o == Outcome.A) & ~a_lo)
    cls = np.where(won, 2, np.where(lost, 0, 1))
    top = int(max(a.max(), b.max())) + 1
    if int(min(a.min(), b.min())) >= 0 and top * top <= 4_000_000:  # dense pair index, no sort
        pair = lo * top + hi
    else:
        _, pair = np.unique(lo * top + hi, return_inverse=True)
    _, vp = np.unique(vidx * (pair.max() + 1) + pair, return_inverse=True)
    all_counts = np.bincount(pair * 3 + cls, minlength=(pair.max() + 1) * 3).reshape(-1, 3)
    own = np.bincount(vp * 3 + cls, minlength=(vp.max() + 1) * 3).reshape(-1, 3)
    ref = all_counts[pair] - own[vp]  # (votes, 3) other voters' outcomes on this pair
    n_ref = ref.sum(axis=1)
    own_freq = ref[np.arange(n), cls]
    # Conformal p-value with "rarity of the outcome" as the nonconformity score.
    as_rare = (ref * (ref <= own_freq[:, None])).sum(axis=1)
    p_val = (1 + as_rare) / (n_ref + 1)

    order = np.lexsort((np.arange(n), vidx))  # by voter, then time
    stat = np.cumsum(-2 * np.log(p_val[order]))
    per_voter = np.bincount(vidx, minlength=ids.size)
    starts = np.concatenate([[0], np.cumsum(per_voter)[:-1]])
    offset = np.where(starts > 0, stat[np.maximum(starts - 1, 0)], 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(1, max_look + 1, size=(ids.size, looks))
    valid = draws <= per_voter[:, None]
    pos = starts[:, None] + np.minimum(draws, np.maximum(per_voter[:, None], 1)) - 1
    m_j = stat[pos] - offset[:, None]
    critical = chi2.ppf(1 - alpha / looks, 2 * draws)
    hit = (valid & (m_j >= critical)).any(axis=1)
    seen = np.argsort(first)  # report in first-seen order
    flagged = [ids[k].item() for k in seen if hit[k]]
    look_map = {ids[k].item(): sorted(draws[k][valid[k]].tolist()) for k in range(ids.size)}
    return AnomalyReport(flagged, p_val, look_map)
