"""Reads for the leaderboard: latest snapshots, vote counts and per-vote arrays for the engine."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Sum
from numpy.typing import NDArray

from arena.models import LLM, Battle, Response, Turn, Vote, VoteCount
from rating.models import LeaderboardSnapshot

CATEGORY_LABELS = {
    "all": "Overall",
    "coding": "Coding",
    "long_prompt": "Long prompts",
    "multi_turn": "Multi-turn",
    "hard": "Hard prompts",
}
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "ru": "Russian", "de": "German", "fr": "French",
    "es": "Spanish", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "it": "Italian",
    "ar": "Arabic", "hi": "Hindi", "el": "Greek", "he": "Hebrew", "th": "Thai",
}  # fmt: skip


def category_label(category: str) -> str:
    """Human label for a category tag; unknown tags are shown as they are (a way to add more)."""
    if category in CATEGORY_LABELS:
        return CATEGORY_LABELS[category]
    if category.startswith("lang:"):
        code = category[5:]
        return LANGUAGE_NAMES.get(code, code)
    return category.replace("_", " ").capitalize()


def category_sort_key(category: str) -> tuple[int, str]:
    order = ["all", "coding", "long_prompt", "multi_turn", "hard"]
    if category in order:
        return (order.index(category), category)
    return (10 if category.startswith("lang:") else 5, category)


# --- snapshots ----------------------------------------------------------------------------------


def snapshot_latest(
    *, source: str = "arena", category: str = "all", style_control: bool = False
) -> LeaderboardSnapshot | None:
    """The most recent snapshot for this view, or None before the first recompute."""
    return (
        LeaderboardSnapshot.objects.filter(
            source=source, category=category, style_control=style_control
        )
        .order_by("-computed_at", "-id")
        .first()
    )


def snapshot_categories(*, source: str = "arena") -> list[str]:
    """Categories that have at least one snapshot, "all" first."""
    cats = set(
        LeaderboardSnapshot.objects.filter(source=source)
        .values_list("category", flat=True)
        .distinct()
    )
    return sorted(cats, key=category_sort_key)


def snapshot_last_version() -> int | None:
    """``counts_version`` of the newest arena snapshot (None before the first)."""
    return (
        LeaderboardSnapshot.objects.filter(source="arena")
        .order_by("-computed_at", "-id")
        .values_list("counts_version", flat=True)
        .first()
    )


# --- vote counts --------------------------------------------------------------------------------


def counts_version() -> int:
    """A cheap fingerprint of the counts table: the sum of every count (one indexed scan).

    Increments only ever add, so any new counted vote changes it; a rebuild that rewrites the
    table is followed by a full recompute anyway.
    """
    return int(VoteCount.objects.aggregate(n=Sum("count"))["n"] or 0)


@dataclass(frozen=True)
class CategoryCounts:
    """Counts of one category as engine input; model_ids are LLM primary keys."""

    category: str
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    outcome: list[str]
    votes: NDArray[np.int64]


def counts_by_category() -> dict[str, CategoryCounts]:
    """Every category's counts (LLM pks as model ids), read from the counts table only."""
    cells: dict[str, list[tuple[int, int, str, int]]] = defaultdict(list)
    for cat, a, b, o, n in VoteCount.objects.filter(count__gt=0).values_list(
        "category", "model_a_id", "model_b_id", "outcome", "count"
    ):
        cells[cat].append((a, b, o, n))
    out = {}
    for cat, rows in cells.items():
        out[cat] = CategoryCounts(
            category=cat,
            a=np.array([r[0] for r in rows], dtype=np.int64),
            b=np.array([r[1] for r in rows], dtype=np.int64),
            outcome=[r[2] for r in rows],
            votes=np.array([r[3] for r in rows], dtype=np.int64),
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


def models_by_id(ids: list[int]) -> dict[int, LLM]:
    return {m.pk: m for m in LLM.objects.filter(pk__in=ids)}


# --- per-vote arrays (full recompute: style control, anomaly detection) -------------------------


@dataclass(frozen=True)
class VoteArrays:
    """Every anonymous vote in time order, as engine-ready arrays (LLM pks as model ids)."""

    vote_id: NDArray[np.int64]
    model_a: NDArray[np.int64]
    model_b: NDArray[np.int64]
    outcome: NDArray[np.int8]
    voter: NDArray[Any]
    flagged: NDArray[np.bool_]
    categories: dict[str, NDArray[np.bool_]]
    features_a: NDArray[np.float64]
    features_b: NDArray[np.float64]
    flags: list[list[str]]


_OUTCOME_CODE = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}


def _vote_rows_sql() -> str:
    vote, battle = Vote._meta.db_table, Battle._meta.db_table
    turn, resp = Turn._meta.db_table, Response._meta.db_table
    sums = ", ".join(
        f"SUM(CASE WHEN r.side = '{side}' THEN r.{col} ELSE 0 END) AS {col}_{side}"
        for side in "ab"
        for col in ("length", "header_count", "list_count", "bold_count")
    )
    cols = ", ".join(
        f"s.{col}_{side}"
        for side in "ab"
        for col in ("length", "header_count", "list_count", "bold_count")
    )
    return (
        f"SELECT v.id, b.model_a_id, b.model_b_id, v.winner, v.voter, v.flags, b.categories,"
        f" {cols}"
        f" FROM {vote} v JOIN {battle} b ON b.id = v.battle_id"
        f" LEFT JOIN (SELECT t.battle_id, {sums} FROM {turn} t"
        f"  JOIN {resp} r ON r.turn_id = t.id GROUP BY t.battle_id) s ON s.battle_id = b.id"
        f" WHERE b.mode = 'anonymous'"
        f" ORDER BY v.id"
    )


def arena_vote_arrays() -> VoteArrays:
    """Read every anonymous vote once (one query) with its battle's tags and style features.

    Style features are summed over the battle's turns per side (as FastChat sums assistant
    tokens over a conversation). Votes are in id order, which is their time order.
    """
    with connection.cursor() as cursor:
        cursor.execute(_vote_rows_sql())
        rows = cursor.fetchall()
    n = len(rows)
    json_cache: dict[Any, list[str]] = {}

    def parse(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        hit = json_cache.get(value)
        if hit is None:
            hit = json_cache[value] = json.loads(value) or []
        return hit

    cols = list(zip(*rows, strict=True)) if rows else [()] * 15
    flags = [parse(v) for v in cols[5]]
    cats = [parse(v) for v in cols[6]]
    feats = np.array(cols[7:15], dtype=np.float64).T if n else np.zeros((0, 8))
    cat_index: dict[str, list[int]] = defaultdict(list)
    for i, cs in enumerate(cats):
        for c in cs:
            if c != "all":
                cat_index[c].append(i)
    masks = {"all": np.ones(n, dtype=bool)}
    for c, idx in cat_index.items():
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        masks[c] = mask
    return VoteArrays(
        vote_id=np.array(cols[0], dtype=np.int64),
        model_a=np.array(cols[1], dtype=np.int64),
        model_b=np.array(cols[2], dtype=np.int64),
        outcome=np.array([_OUTCOME_CODE[w] for w in cols[3]], dtype=np.int8),
        voter=np.array(cols[4], dtype=object),
        flagged=np.array([bool(f) for f in flags], dtype=bool),
        categories=masks,
        features_a=np.nan_to_num(feats[:, :4]),
        features_b=np.nan_to_num(feats[:, 4:]),
        flags=flags,
    )


# --- model detail -------------------------------------------------------------------------------


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


# --- annotation source (hook) -------------------------------------------------------------------


def annotation_pairs() -> tuple[list[int], list[int], list[int], list[float]] | None:
    """Pairs expanded from annotators' rankings, or None while the annotations app has none.

    Contract expected from ``annotations.selectors.ranking_pairs_for_rating()``: an iterable of
    (better_llm_id, worse_llm_id, outcome 0 = first better / 2 = tie, weight) where weight is
    1 / (K - 1) times the annotator's trust. Those pairs are fitted on their own and written
    as ``source="annotation"`` snapshots, never mixed into the arena numbers.
    """
    try:
        from annotations.selectors import ranking_pairs_for_rating  # type: ignore[import-not-found]
    except ImportError:
        return None
    rows = list(ranking_pairs_for_rating())
    if not rows:
        return None
    a, b, o, w = (list(col) for col in zip(*rows, strict=True))
    return a, b, o, w
