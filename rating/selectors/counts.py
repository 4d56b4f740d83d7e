"""Reads of the vote counts (what the plain boards are fitted on) and of the models."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Sum
from numpy.typing import NDArray

from arena.counts import CountCells, table_cells
from arena.models import LLM, Battle, Vote, VoteCount


def counts_versions() -> dict[str, int]:
    """Per-category fingerprint of the counts: the sum of the category's counts (one scan).

    Increments only ever add, so a new counted vote changes the sum of exactly the categories
    it counts in; a rebuild that corrects drift changes the sums of the categories it touched.
    """
    rows = (
        VoteCount.objects.values("category").annotate(n=Sum("count")).values_list("category", "n")
    )
    return {c: int(n or 0) for c, n in rows if n}


@dataclass(frozen=True)
class CategoryCounts:
    """Counts of one category as engine input; model_ids are LLM primary keys."""

    category: str
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    outcome: list[str]
    votes: NDArray[np.int64]

    @property
    def total(self) -> int:
        return int(self.votes.sum())


def counts_by_category(categories: list[str] | None = None) -> dict[str, CategoryCounts]:
    """The counts of every category (or of ``categories``), LLM pks as model ids.

    Reads the counts table only (on PostgreSQL one array row per category through COPY:
    ~30,000 cells per category at 100 models).
    """
    if categories is not None and not categories:
        return {}
    return category_counts(table_cells(categories))


def category_counts(cells: CountCells) -> dict[str, CategoryCounts]:
    """Cells grouped per category (empty cells left out), as the plain fits read them."""
    cats = np.asarray(cells.category, dtype=object)
    n = np.asarray(cells.count, dtype=np.int64)
    out = {}
    for cat in sorted(set(cats.tolist())):
        sel = (cats == cat) & (n > 0)
        if not sel.any():
            continue
        out[cat] = CategoryCounts(
            cat,
            np.asarray(cells.model_a, dtype=np.int64)[sel],
            np.asarray(cells.model_b, dtype=np.int64)[sel],
            np.asarray(cells.outcome, dtype=object)[sel].tolist(),
            n[sel],
        )
    return out


def flagged_by_category() -> dict[str, int]:
    """Flagged anonymous votes per category (flagged votes are few: only they are read)."""
    counter: Counter[str] = Counter()
    rows = (
        Vote.objects.filter(battle__mode=Battle.Mode.ANONYMOUS)
        .exclude(flags=[])
        .exclude(flags__isnull=True)
        .values_list("battle__categories", flat=True)
    )
    for cats in rows:
        counter.update({"all", *(cats or [])})
    return dict(counter)


# --- models -------------------------------------------------------------------------------------


def models_by_id(ids: list[int]) -> dict[int, LLM]:
    """The LLMs with the given pks (missing pks are simply absent)."""
    return {m.pk: m for m in LLM.objects.filter(pk__in=ids)}


def arena_model_pks() -> list[int]:
    """Pks of the models the arena may sample (they get sampling weights even without votes)."""
    return list(LLM.objects.for_arena().values_list("pk", flat=True))


def head_to_head(llm: LLM, *, category: str = "all") -> list[dict[str, Any]]:
    """Record of ``llm`` against each opponent from the counts: wins, losses, ties, both bad."""
    record: dict[int, Counter[str]] = defaultdict(Counter)
    cells = VoteCount.objects.filter(category=category, count__gt=0)
    for b, outcome, n in cells.filter(model_a=llm).values_list("model_b_id", "outcome", "count"):
        key = {"a": "wins", "b": "losses", "tie": "ties", "both_bad": "both_bad"}[outcome]
        record[b][key] += n
    for a, outcome, n in cells.filter(model_b=llm).values_list("model_a_id", "outcome", "count"):
        key = {"a": "losses", "b": "wins", "tie": "ties", "both_bad": "both_bad"}[outcome]
        record[a][key] += n
    opponents = models_by_id(list(record))
    out = []
    for pk, c in record.items():
        opp = opponents.get(pk)
        if opp is None:
            continue
        total = sum(c.values())
        out.append(
            {
                "opponent": opp.slug,
                "opponent_name": opp.display_name,
                "battles": total,
                "wins": c["wins"],
                "losses": c["losses"],
                "ties": c["ties"],
                "both_bad": c["both_bad"],
                "win_rate": (c["wins"] + 0.5 * (c["ties"] + c["both_bad"])) / total,
            }
        )
    out.sort(key=lambda r: (-r["battles"], r["opponent"]))
    return out
