"""Active-sampling weights: rating computes them from the overall board, arena stores them."""

from __future__ import annotations

import numpy as np

from arena.services import sampling_weights_replace
from rating import selectors
from rating.engine import SCALE, VoteCounts, active_sampling_weights, pair_table
from rating.services.snapshots import MEAN_SCORE, Fit


def sampling_weights_write(
    *, counts: selectors.CategoryCounts | None, fit: Fit | None, arena_pks: list[int]
) -> int:
    """Replace the arena's pair sampling weights with the active-sampling rule's weights.

    ``counts`` and ``fit`` are the overall ("all") counts and plain board, None before the first
    vote. Covers every pair of models the arena may sample (``arena_pks``) and those with
    votes; models without votes get a wide prior variance, hence high weight, so new models
    are explored first. Returns the number of pairs written.
    """
    voted = set((*counts.a.tolist(), *counts.b.tolist())) if counts is not None else set()
    pks = sorted(set(arena_pks) | voted)
    if len(pks) < 2:
        return 0
    index = {pk: k for k, pk in enumerate(pks)}
    if counts is not None:
        vote_counts = VoteCounts.from_counts(
            len(pks), [index[int(x)] for x in counts.a], [index[int(x)] for x in counts.b],
            counts.outcome, counts.votes,
        )  # fmt: skip
    else:
        vote_counts = VoteCounts.from_counts(len(pks), [], [], [], [])
    theta = np.zeros(len(pks))
    if fit is not None:
        for row in fit.board.models:
            if row.score is not None:
                theta[index[fit.pks[row.index]]] = (row.score - MEAN_SCORE) / SCALE
    weights = active_sampling_weights(pair_table(vote_counts), theta)
    rows = [
        (pks[i], pks[j], w)
        for i, j, w in zip(
            weights.i.tolist(), weights.j.tolist(), weights.weight.tolist(), strict=True
        )
    ]
    return sampling_weights_replace(weights=rows)
