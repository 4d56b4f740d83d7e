"""Reads of the vote counts (what the plain boards are fitted on): fingerprints, cells per
category, flagged votes, a model's head-to-head record. The tables are read through
``arena.counts`` and ``arena.selectors``."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arena.counts import CountCells, counts_of_model, counts_totals, table_cells
from arena.models import LLM
from arena.selectors import flagged_vote_categories, llms_by_pk


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
    counter: Counter[str] = Counter()
    for cats in flagged_vote_categories():
        counter.update({"all", *cats})
    return dict(counter)


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
