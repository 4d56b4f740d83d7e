"""Active-sampling weights: rating computes them from the overall board and the battles each
pair was shown in; arena stores them."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from arena.services import sampling_weights_replace
from rating.engine import SCALE, VoteCounts, active_sampling_weights, pair_table
from rating.services.snapshots import MEAN_SCORE, Fit

Shown = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def sampling_weights_write(*, shown: Shown | None, fit: Fit | None, arena_pks: list[int]) -> int:
    """Replace the arena's pair sampling weights with the active-sampling rule's weights.

    ``shown`` is (model a pk, model b pk, battles) per pair of models that met in anonymous
    battles (``selectors.battles_shown``), None before the first battle; ``fit`` the overall
    plain board (its strengths), None before the first vote. A pair's information counts the
    battles voters were shown, not the votes that counted: a model whose votes are excluded
    (identity leaks) is not under-sampled, so it must not be drawn more. Covers every pair of
    models the arena may sample (``arena_pks``) and those with battles; models never shown get
    a wide prior variance, hence high weight, so new models are explored first. Returns the
    number of pairs written.
    """
    met = set((*shown[0].tolist(), *shown[1].tolist())) if shown is not None else set()
    pks = sorted(set(arena_pks) | met)
    if len(pks) < 2:
        return 0
    index = {pk: k for k, pk in enumerate(pks)}
    exposure = None
    if shown is not None and shown[2].size:
        exposure = (
            np.array([index[int(x)] for x in shown[0]], dtype=np.int64),
            np.array([index[int(x)] for x in shown[1]], dtype=np.int64),
            shown[2],
        )
    theta = np.zeros(len(pks))
    if fit is not None:
        for row in fit.board.models:
            if row.score is not None:
                theta[index[fit.pks[row.index]]] = (row.score - MEAN_SCORE) / SCALE
    no_votes = pair_table(VoteCounts.from_counts(len(pks), [], [], [], []))
    weights = active_sampling_weights(no_votes, theta, shown=exposure)
    rows = [
        (pks[i], pks[j], w)
        for i, j, w in zip(
            weights.i.tolist(), weights.j.tolist(), weights.weight.tolist(), strict=True
        )
    ]
    return sampling_weights_replace(weights=rows)
