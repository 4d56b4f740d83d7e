"""Agreement and quality metrics as plain functions (no Django): rankings with ties in, numbers out.

A *ranking* is a list of groups of item indices, best first; a group with several indices is a
tie. ``ranks(ranking, n)`` turns it into mid-ranks (1 = best), which every metric here consumes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Literal

Ranking = list[list[int]]
Level = Literal["nominal", "ordinal", "interval"]


def ranks(ranking: Sequence[Sequence[int]], n: int | None = None) -> list[float]:
    """Mid-ranks per index (1 = best; ties share the mean of the places they occupy)."""
    size = n if n is not None else sum(len(g) for g in ranking)
    out = [math.nan] * size
    place = 1
    for group in ranking:
        mid = place + (len(group) - 1) / 2
        for idx in group:
            out[idx] = mid
        place += len(group)
    return out


def ranking_from_scores(scores: Sequence[float], *, higher_is_better: bool = True) -> Ranking:
    """Group indices by equal score, best first (rating tasks derive their ranking this way)."""
    by: dict[float, list[int]] = {}
    for i, s in enumerate(scores):
        by.setdefault(float(s), []).append(i)
    keys = sorted(by, reverse=higher_is_better)
    return [by[k] for k in keys]


def validate_ranking(ranking: object, k: int, *, complete: bool = True) -> Ranking:
    """A well-formed ranking of exactly the indices 0..k-1 (raises ValueError otherwise); with
    ``complete=False`` (a draft) some may be missing, but none is placed twice."""
    if not isinstance(ranking, list) or not ranking:
        raise ValueError("the ranking must be a non-empty list of groups")
    seen: list[int] = []
    out: Ranking = []
    for group in ranking:
        if not isinstance(group, list) or not group:
            raise ValueError("every group of the ranking must be a non-empty list")
        for idx in group:
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < k:
                raise ValueError(f"response index {idx!r} is out of range")
        seen.extend(group)
        out.append(list(group))
    if complete and sorted(seen) != list(range(k)):
        raise ValueError(f"the ranking must place each of the {k} responses exactly once")
    if len(set(seen)) != len(seen):
        raise ValueError("the ranking places a response more than once")
    return out


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two rank vectors (ties allowed); 0.0 when either is constant."""
    if len(a) != len(b):
        raise ValueError("rank vectors differ in length")
    concordant = discordant = ties_a = ties_b = 0
    for i, j in combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else 0.0


def top_choice_correct(answer: Ranking, gold: Ranking) -> bool:
    """Gold accuracy: every response the annotator put first is among gold's best."""
    return bool(answer) and set(answer[0]) <= set(gold[0])


def kendall_w(matrix: Sequence[Sequence[float]]) -> float:
    """Kendall's coefficient of concordance W with the tie correction.

    ``matrix`` is m raters x n objects of ranks (mid-ranks for ties). 1 = perfect agreement.
    """
    m = len(matrix)
    if m < 2:
        return math.nan
    n = len(matrix[0])
    if n < 2:
        return math.nan
    totals = [sum(row[j] for row in matrix) for j in range(n)]
    mean = m * (n + 1) / 2
    s = sum((t - mean) ** 2 for t in totals)
    tie_term = 0.0
    for row in matrix:
        counts: dict[float, int] = {}
        for v in row:
            counts[v] = counts.get(v, 0) + 1
        tie_term += sum(t**3 - t for t in counts.values())
    denom = m**2 * (n**3 - n) - m * tie_term
    return 12 * s / denom if denom else math.nan


def _delta(level: Level, values: list[float], counts: dict[float, float]):
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: (c - k) ** 2

    # ordinal: (sum of marginals from c to k, minus half of each end)^2
    order = sorted(values)
    pos = {v: i for i, v in enumerate(order)}
    cum = [0.0]
    for v in order:
        cum.append(cum[-1] + counts[v])

    def ordinal(c: float, k: float) -> float:
        lo, hi = sorted((pos[c], pos[k]))
        between = cum[hi + 1] - cum[lo]
        return (between - (counts[c] + counts[k]) / 2) ** 2

    return ordinal


def krippendorff_alpha(units: Iterable[Sequence[float | None]], level: Level = "ordinal") -> float:
    """Krippendorff's alpha for ``units`` (each a sequence of values, ``None`` = missing).

    Units with fewer than two values are not pairable and are dropped. NaN when there is no
    variation at all (or nothing pairable).
    """
    coincidence: dict[tuple[float, float], float] = {}
    for unit in units:
        vals = [float(v) for v in unit if v is not None and not _isnan(v)]
        mu = len(vals)
        if mu < 2:
            continue
        for a in range(mu):
            for b in range(mu):
                if a != b:
                    key = (vals[a], vals[b])
                    coincidence[key] = coincidence.get(key, 0.0) + 1.0 / (mu - 1)
    if not coincidence:
        return math.nan
    counts: dict[float, float] = {}
    for (c, _k), o in coincidence.items():
        counts[c] = counts.get(c, 0.0) + o
    total = sum(counts.values())
    values = list(counts)
    delta = _delta(level, values, counts)
    observed = sum(o * delta(c, k) for (c, k), o in coincidence.items())
    expected = sum(counts[c] * counts[k] * delta(c, k) for c in values for k in values)
    if expected == 0:
        return math.nan
    return 1.0 - (total - 1) * observed / expected


def _isnan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


def ranked_pairs(
    rankings: Sequence[Ranking], n: int, weights: Sequence[float] | None = None
) -> Ranking:
    """Tideman's ranked pairs consensus over rankings with ties (OpenAssistant's method).

    Pairwise margins are summed (weighted by ``weights``, e.g. trust), then locked from the
    largest margin down unless they would close a cycle. The result groups, layer by layer, the
    indices no locked edge separates; equal margins are broken by index for determinism.
    """
    margin = _pairwise_margins(rankings, n, weights)
    pairs = sorted(
        ((margin[i][j], i, j) for i in range(n) for j in range(n) if margin[i][j] > 0),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    locked: dict[int, set[int]] = {i: set() for i in range(n)}
    for _m, i, j in pairs:
        if not _reaches(locked, j, i):
            locked[i].add(j)
    return _layers(locked, n)


def _pairwise_margins(
    rankings: Sequence[Ranking], n: int, weights: Sequence[float] | None
) -> list[list[float]]:
    """``margin[i][j]``: the weight of rankings placing i above j, minus those placing j above i."""
    w = list(weights) if weights is not None else [1.0] * len(rankings)
    margin = [[0.0] * n for _ in range(n)]
    for ranking, weight in zip(rankings, w, strict=True):
        r = ranks(ranking, n)
        for i, j in combinations(range(n), 2):
            if r[i] < r[j]:
                better, worse = i, j
            elif r[j] < r[i]:
                better, worse = j, i
            else:  # tied, or either unranked (NaN)
                continue
            margin[better][worse] += weight
            margin[worse][better] -= weight
    return margin


def _reaches(edges: dict[int, set[int]], src: int, dst: int) -> bool:
    """Whether a path of ``edges`` leads from ``src`` to ``dst``."""
    stack, seen = [src], set()
    while stack:
        node = stack.pop()
        if node == dst:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges[node])
    return False


def _layers(edges: dict[int, set[int]], n: int) -> Ranking:
    """The nodes of an acyclic graph, layer by layer: first those nothing points to."""
    indegree = {i: 0 for i in range(n)}
    for i in range(n):
        for j in edges[i]:
            indegree[j] += 1
    remaining = set(range(n))
    out: Ranking = []
    while remaining:
        layer = sorted(i for i in remaining if indegree[i] == 0)
        out.append(layer)
        for i in layer:
            remaining.discard(i)
            for j in edges[i]:
                indegree[j] -= 1
    return out


def ranking_agreement(rankings: Sequence[Ranking], n: int) -> dict[str, float]:
    """Alpha (ordinal, over each response's rank) and mean W for one item's rankings."""
    matrix = [ranks(r, n) for r in rankings]
    units = [[row[j] for row in matrix] for j in range(n)]
    return {"alpha": krippendorff_alpha(units, "ordinal"), "w": kendall_w(matrix)}


def mean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def trust_score(
    gold_taus: Sequence[float], consensus_taus: Sequence[float], *, prior: float = 2.0
) -> float:
    """0..1: the mean of (tau+1)/2 over gold answers and agreement with consensus.

    Each source is shrunk toward 0.5 by ``prior`` pseudo-observations, so one lucky or unlucky
    task does not swing it; gold counts twice as much as consensus (it is the known truth).
    """

    def shrunk(taus: Sequence[float]) -> float:
        scores = [(t + 1) / 2 for t in taus if not math.isnan(t)]
        return (sum(scores) + 0.5 * prior) / (len(scores) + prior)

    return (2 * shrunk(gold_taus) + shrunk(consensus_taus)) / 3
