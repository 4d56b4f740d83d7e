"""Reads of the vote counts (what the plain boards are fitted on): fingerprints, cells per
category, flagged votes and why they were excluded, the battles each pair was shown in, a
model's head-to-head record. The counts are read through ``arena.counts`` and
``arena.selectors``."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Count
from numpy.typing import NDArray

from arena.counts import CountCells, counts_of_model, counts_totals, table_cells
from arena.models import LLM, Battle, Vote
from arena.selectors import llms_by_pk


def counts_versions() -> dict[str, int]:
    """Per-category fingerprint of the counts: the sum of the category's counts (one scan).

    Increments only ever add, so a new counted vote changes the sum of exactly the categories
    it counts in; a rebuild that corrects drift changes the sums of the categories it touched.
    """
    return counts_totals()


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
    return {cat: excluded["total"] for cat, excluded in excluded_by_category().items()}


def excluded_by_category() -> dict[str, dict[str, Any]]:
    """Per category, the excluded (flagged) anonymous votes: ``{"total": n, "by_reason": {flag:
    n}}``. A vote with several flags counts once in the total and under each of its flags;
    reasons are the vote flags (``Vote.Flag``), listed even when zero. Only flagged votes are
    read (they are few)."""
    rows = (
        Vote.objects.filter(battle__mode=Battle.Mode.ANONYMOUS)
        .exclude(flags=[])
        .exclude(flags__isnull=True)
        .values_list("flags", "battle__categories")
    )
    totals: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for flags, cats in rows:
        for cat in {"all", *(cats or [])}:
            totals[cat] += 1
            reasons[cat].update(set(flags or []))
    return {cat: excluded_summary(totals[cat], reasons[cat]) for cat in totals}


def excluded_summary(total: int, by_reason: dict[str, int] | None = None) -> dict[str, Any]:
    """``{"total": total, "by_reason": {every known flag: count, then any unknown flag}}``."""
    counts = dict(by_reason or {})
    ordered = {flag: int(counts.pop(flag, 0)) for flag in Vote.Flag.values}
    ordered.update({flag: int(n) for flag, n in sorted(counts.items())})
    return {"total": int(total), "by_reason": ordered}


def battles_shown() -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Anonymous battles per unordered pair of models (LLM pks, a < b): what voters were shown,
    voted or not, whatever became of the vote. Active sampling measures exposure by this."""
    rows = (
        Battle.objects.filter(mode=Battle.Mode.ANONYMOUS)
        .values_list("model_a_id", "model_b_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    data = np.array(list(rows), dtype=np.int64).reshape(-1, 3)
    lo = np.minimum(data[:, 0], data[:, 1])
    hi = np.maximum(data[:, 0], data[:, 1])
    pairs, inverse = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
    n = np.bincount(inverse.reshape(-1), data[:, 2], len(pairs)).astype(np.int64)
    return pairs[:, 0].copy(), pairs[:, 1].copy(), n


# --- model detail -------------------------------------------------------------------------------


def head_to_head(llm: LLM, *, category: str = "all") -> list[dict[str, Any]]:
    """Record of ``llm`` against each opponent from the counts: wins, losses, ties, both bad."""
    record: dict[int, Counter[str]] = defaultdict(Counter)
    as_a, as_b = counts_of_model(llm.pk, category=category)
    for b, outcome, n in as_a:
        key = {"a": "wins", "b": "losses", "tie": "ties", "both_bad": "both_bad"}[outcome]
        record[b][key] += n
    for a, outcome, n in as_b:
        key = {"a": "losses", "b": "wins", "tie": "ties", "both_bad": "both_bad"}[outcome]
        record[a][key] += n
    opponents = llms_by_pk(list(record))
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
