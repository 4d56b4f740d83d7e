"""The annotation source: annotators' accepted rankings as weighted model pairs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from annotations.selectors import accepted_rankings

Pair = tuple[int, int, int, float]  # (model a pk, model b pk, outcome code, weight)


def annotation_pairs() -> tuple[list[int], list[int], list[int], list[float]] | None:
    """Pairs expanded from annotators' accepted rankings, or None when there are none.

    A ranking of K responses becomes its K(K-1)/2 pairs between registered models (responses
    without a source model, or two from the same model, are skipped): the better-ranked model
    first with outcome 0, or outcome 2 for responses tied in one group. Each pair weighs
    ``trust / (K - 1)``, so one annotation counts about as much as one arena vote per model,
    scaled by how much the annotator is trusted. Fitted on their own and written as
    ``source="annotation"`` snapshots, never mixed into the arena numbers.
    """
    pairs = [pair for ranking in accepted_rankings() for pair in _ranking_pairs(ranking)]
    if not pairs:
        return None
    a, b, o, w = (list(column) for column in zip(*pairs, strict=True))
    return a, b, o, w


def _ranking_pairs(ranking: dict[str, Any]) -> Iterator[Pair]:
    """One ranking's pairs, group by group in ranking order (best group first)."""
    llm_of = {r["index"]: r.get("llm_id") for r in ranking["responses"]}
    k = len(ranking["responses"])
    if k < 2:
        return
    weight = float(ranking.get("trust") or 0.0) / (k - 1)
    if weight <= 0:
        return
    groups = [[llm_of.get(i) for i in group] for group in ranking["ranking"]]
    for gi, group in enumerate(groups):
        for x, first in enumerate(group):
            # ties inside the group, then wins over every later group
            opponents = [(second, 2) for second in group[x + 1 :]]
            opponents += [(second, 0) for later in groups[gi + 1 :] for second in later]
            for second, outcome in opponents:
                if first and second and first != second:
                    yield first, second, outcome, weight
