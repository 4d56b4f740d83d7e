"""Vote data: outcome labels, aggregation of per-vote rows into counts, pair tables.

Everything downstream of this module works on aggregated counts, so a fit costs
O(distinct pairs) and not O(votes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


class RatingError(ValueError):
    """Base class of every error the rating engine raises on bad input."""


class UnknownOutcomeError(RatingError):
    """An outcome label is not one of the accepted labels; the message names the row."""

    def __init__(self, row: int, label: object) -> None:
        self.row = row
        self.label = label
        super().__init__(
            f"row {row}: unknown winner label {label!r} "
            f"(expected one of {sorted(set(OUTCOME_LABELS))} or 0-3)"
        )


class InvalidVoteError(RatingError):
    """A vote row is malformed (model index out of range, a model against itself, bad weight)."""


class DisconnectedGraphError(RatingError):
    """The comparison graph has several connected components, so scores are not comparable.

    `components` holds the component label of every model (0 is the component with most votes).
    `leaderboard()` never raises this: it fits each component separately and warns instead.
    """

    def __init__(self, components: NDArray[np.int64]) -> None:
        self.components = components
        n = int(components.max()) + 1 if components.size else 0
        super().__init__(f"comparison graph has {n} connected components; fit each separately")


class Outcome(IntEnum):
    """Vote outcome from the point of view of model_a."""

    A = 0
    B = 1
    TIE = 2
    BOTH_BAD = 3


# Chatbot Arena labels plus a few spellings other exports use.
OUTCOME_LABELS: dict[str, Outcome] = {
    "model_a": Outcome.A,
    "a": Outcome.A,
    "model_b": Outcome.B,
    "b": Outcome.B,
    "tie": Outcome.TIE,
    "tie (bothbad)": Outcome.BOTH_BAD,
    "both_bad": Outcome.BOTH_BAD,
    "bothbad": Outcome.BOTH_BAD,
}

# Score of model_a for each outcome under the half-win convention.
HALF_SCORE = np.array([1.0, 0.0, 0.5, 0.5])


def parse_outcomes(labels: ArrayLike) -> NDArray[np.int8]:
    """Map winner labels (strings above, or integers 0-3) to `Outcome` codes.

    Raises `UnknownOutcomeError` naming the first bad row (0-based position in `labels`).
    """
    arr = np.asarray(labels)
    if arr.dtype.kind in "iu":
        bad = np.flatnonzero((arr < 0) | (arr > 3))
        if bad.size:
            raise UnknownOutcomeError(int(bad[0]), arr[bad[0]].item())
        return arr.astype(np.int8)
    uniq, inverse = np.unique(arr.astype(object).astype(str), return_inverse=True)
    codes = np.empty(len(uniq), dtype=np.int8)
    for k, label in enumerate(uniq):
        key = label.strip().lower()
        if key not in OUTCOME_LABELS:
            row = int(np.flatnonzero(inverse.reshape(-1) == k)[0])
            value = arr.reshape(-1)[row]
            raise UnknownOutcomeError(row, value.item() if isinstance(value, np.generic) else value)
        codes[k] = OUTCOME_LABELS[key]
    return codes[inverse.reshape(-1)]


@dataclass(frozen=True)
class VoteCounts:
    """Aggregated votes: one entry per distinct (model_a, model_b, outcome) cell.

    `votes` counts rows, `weight` sums their weights (equal to `votes` when unweighted) and
    `weight_sq` sums squared weights (needed by the sandwich estimator). Cells are ordered by
    (a, b, outcome); only cells with at least one vote are stored.
    """

    n_models: int
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    outcome: NDArray[np.int64]
    votes: NDArray[np.int64]
    weight: NDArray[np.float64]
    weight_sq: NDArray[np.float64]

    @property
    def total_votes(self) -> int:
        return int(self.votes.sum())

    def votes_per_model(self) -> NDArray[np.int64]:
        """Battles each model took part in (as A or as B)."""
        m = self.n_models
        return np.bincount(self.a, self.votes, m).astype(np.int64) + np.bincount(
            self.b, self.votes, m
        ).astype(np.int64)

    @classmethod
    def from_counts(
        cls,
        n_models: int,
        a: ArrayLike,
        b: ArrayLike,
        outcome: ArrayLike,
        votes: ArrayLike,
        weight: ArrayLike | None = None,
        weight_sq: ArrayLike | None = None,
    ) -> VoteCounts:
        """Build from already-aggregated cells (duplicate cells are merged).

        Without `weight`, each vote weighs 1. Without `weight_sq`, every vote in a cell is
        assumed to carry the cell's mean weight.
        """
        v = np.asarray(votes, dtype=np.float64)
        w = v if weight is None else np.asarray(weight, dtype=np.float64)
        if weight_sq is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                w2 = np.where(v > 0, w * w / np.where(v > 0, v, 1.0), 0.0)
        else:
            w2 = np.asarray(weight_sq, dtype=np.float64)
        return _aggregate(n_models, a, b, parse_outcomes(outcome), v, w, w2)


def aggregate(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    *,
    n_models: int | None = None,
    weights: ArrayLike | None = None,
) -> VoteCounts:
    """Aggregate per-vote rows into `VoteCounts` (vectorised, one bincount).

    `model_a`/`model_b` are integer model indices in [0, n_models); `outcome` holds labels or
    `Outcome` codes; `weights` are optional non-negative per-vote weights.
    Raises `InvalidVoteError` / `UnknownOutcomeError` naming the offending row.
    """
    a = np.asarray(model_a)
    ones = np.ones(a.shape[0])
    w = ones if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != ones.shape:
        raise InvalidVoteError("weights must have one entry per vote")
    return _aggregate(n_models, a, model_b, parse_outcomes(outcome), ones, w, w * w)


def _aggregate(
    n_models: int | None,
    a_in: ArrayLike,
    b_in: ArrayLike,
    o: NDArray[np.int8],
    votes: NDArray[np.float64],
    weight: NDArray[np.float64],
    weight_sq: NDArray[np.float64],
) -> VoteCounts:
    a = np.asarray(a_in, dtype=np.int64).reshape(-1)
    b = np.asarray(b_in, dtype=np.int64).reshape(-1)
    if not (a.shape == b.shape == o.shape == votes.shape == weight.shape):
        raise InvalidVoteError("model_a, model_b, outcome (and weights) must have equal length")
    m = int(max(a.max(initial=-1), b.max(initial=-1)) + 1) if n_models is None else n_models
    for name, arr in (("model_a", a), ("model_b", b)):
        bad = np.flatnonzero((arr < 0) | (arr >= m))
        if bad.size:
            raise InvalidVoteError(f"row {bad[0]}: {name} index {arr[bad[0]]} not in [0, {m})")
    bad = np.flatnonzero(a == b)
    if bad.size:
        raise InvalidVoteError(f"row {bad[0]}: model {a[bad[0]]} battles itself")
    bad = np.flatnonzero(~(weight >= 0) | ~np.isfinite(weight))
    if bad.size:
        raise InvalidVoteError(f"row {bad[0]}: weight {weight[bad[0]]} is not finite and >= 0")
    code = (a * m + b) * 4 + o
    size = m * m * 4
    if size <= 50_000_000:
        cnt = np.bincount(code, votes, size)
        keep = np.flatnonzero(cnt > 0)
        v, w, w2 = cnt[keep], np.bincount(code, weight, size)[keep], None
        w2 = np.bincount(code, weight_sq, size)[keep]
    else:  # too many models for a dense table: sort instead
        keep, inv = np.unique(code, return_inverse=True)
        v = np.bincount(inv, votes)
        w, w2 = np.bincount(inv, weight), np.bincount(inv, weight_sq)
    return VoteCounts(
        n_models=m,
        a=keep // 4 // m,
        b=keep // 4 % m,
        outcome=keep % 4,
        votes=np.rint(v).astype(np.int64),
        weight=w,
        weight_sq=w2,
    )


@dataclass(frozen=True)
class PairTable:
    """Votes folded onto unordered pairs i < j, in three classes seen from i.

    Column 0 = i won, 1 = tie or both bad, 2 = j won. Shapes: `i`, `j` (P,), the rest (P, 3).
    Folding is exact for every model here: none has a position (first/second) effect.
    """

    n_models: int
    i: NDArray[np.int64]
    j: NDArray[np.int64]
    votes: NDArray[np.int64]
    weight: NDArray[np.float64]
    weight_sq: NDArray[np.float64]

    @property
    def n_pairs(self) -> int:
        return int(self.i.shape[0])

    def subset(self, models: Sequence[int] | NDArray[np.int64]) -> tuple[PairTable, NDArray]:
        """Restrict to pairs inside `models`; returns the table re-indexed 0..len-1 and the map."""
        models = np.asarray(models, dtype=np.int64)
        new = np.full(self.n_models, -1, dtype=np.int64)
        new[models] = np.arange(models.size)
        keep = (new[self.i] >= 0) & (new[self.j] >= 0)
        table = PairTable(
            n_models=int(models.size),
            i=new[self.i[keep]],
            j=new[self.j[keep]],
            votes=self.votes[keep],
            weight=self.weight[keep],
            weight_sq=self.weight_sq[keep],
        )
        return table, models


def pair_table(counts: VoteCounts) -> PairTable:
    """Fold `VoteCounts` onto unordered pairs with classes (i won, tie/both bad, j won)."""
    m = counts.n_models
    lo = np.minimum(counts.a, counts.b)
    hi = np.maximum(counts.a, counts.b)
    a_is_lo = counts.a == lo
    a_won = counts.outcome == Outcome.A
    b_won = counts.outcome == Outcome.B
    cls = np.where((a_won & a_is_lo) | (b_won & ~a_is_lo), 0, np.where(a_won | b_won, 2, 1))
    pair_code = lo * m + hi
    pairs, inv = np.unique(pair_code, return_inverse=True)
    p = pairs.size
    flat = inv * 3 + cls

    def fold(x: NDArray) -> NDArray[np.float64]:
        return np.bincount(flat, x, p * 3).reshape(p, 3)

    return PairTable(
        n_models=m,
        i=pairs // m,
        j=pairs % m,
        votes=np.rint(fold(counts.votes)).astype(np.int64),
        weight=fold(counts.weight),
        weight_sq=fold(counts.weight_sq),
    )


def components(table: PairTable) -> NDArray[np.int64]:
    """Connected-component label per model, 0 = component with the most votes.

    Models with no votes form singleton components ordered after every voted one.
    """
    m = table.n_models
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    has = table.weight.sum(axis=1) > 0
    graph = coo_matrix((np.ones(int(has.sum())), (table.i[has], table.j[has])), shape=(m, m))
    n, labels = connected_components(graph, directed=False)
    votes = np.bincount(table.i, table.votes.sum(1), m) + np.bincount(
        table.j, table.votes.sum(1), m
    )
    comp_votes = np.bincount(labels, votes, n)
    comp_size = np.bincount(labels, minlength=n)
    # Most votes first, then larger, then by first model; singletons without votes sink.
    order = np.lexsort((np.arange(n), -comp_size, -comp_votes))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank[labels]


def mle_exists(table: PairTable) -> bool:
    """True when the half-win BT MLE is finite (Zermelo/Ford condition).

    It exists iff the directed graph "i earned credit against j" is strongly connected.
    """
    m = table.n_models
    if m <= 1:
        return True
    w = table.weight
    i_credit = (w[:, 0] + w[:, 1]) > 0
    j_credit = (w[:, 2] + w[:, 1]) > 0
    src = np.concatenate([table.i[i_credit], table.j[j_credit]])
    dst = np.concatenate([table.j[i_credit], table.i[j_credit]])
    graph = coo_matrix((np.ones(src.size), (src, dst)), shape=(m, m))
    n, _ = connected_components(graph, directed=True, connection="strong")
    return n == 1
