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

from arena.counts import CountCells, copy_rows, table_cells
from arena.models import LLM, Battle, Vote, VoteCount
from core.pgcopy import int_array
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
    """A cheap fingerprint of the whole counts table: the sum of every count."""
    return int(VoteCount.objects.aggregate(n=Sum("count"))["n"] or 0)


def counts_versions() -> dict[str, int]:
    """Per-category fingerprint of the counts: the sum of the category's counts (one scan).

    Increments only ever add, so a new counted vote changes the sum of exactly the categories
    it counts in; a rebuild that corrects drift changes the sums of the categories it touched.
    """
    rows = (
        VoteCount.objects.values("category").annotate(n=Sum("count")).values_list("category", "n")
    )
    return {c: int(n or 0) for c, n in rows if n}


def snapshot_versions(*, source: str = "arena") -> dict[str, int]:
    """``counts_version`` of the newest plain snapshot per category (the table stays small)."""
    out: dict[str, int] = {}
    rows = (
        LeaderboardSnapshot.objects.filter(source=source, style_control=False)
        .order_by("-computed_at", "-id")
        .values_list("category", "counts_version")
    )
    for cat, version in rows:
        out.setdefault(cat, int(version))
    return out


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


def models_by_id(ids: list[int]) -> dict[int, LLM]:
    return {m.pk: m for m in LLM.objects.filter(pk__in=ids)}


# --- per-vote arrays (full recompute: style control, anomaly detection, count rebuild) ---------


@dataclass
class VoteArrays:
    """Every vote in id (= time) order, as engine-ready arrays (LLM pks as model ids).

    One row per vote, read from the votes and their battles only: the style features are the
    per-side conversation totals stored on the vote. ``voter`` holds integer voter codes (equal
    codes = same voter); ``categories`` one mask per category; ``anonymous`` marks votes of
    anonymous battles (only they are rated and counted); ``flagged`` votes with any flag,
    ``anomalous`` those with the anomalous-voter flag.
    """

    vote_id: NDArray[np.int64]
    model_a: NDArray[np.int64]
    model_b: NDArray[np.int64]
    outcome: NDArray[np.int8]
    voter: NDArray[np.int64]
    anonymous: NDArray[np.bool_]
    flagged: NDArray[np.bool_]
    anomalous: NDArray[np.bool_]
    categories: dict[str, NDArray[np.bool_]]
    features_a: NDArray[np.float64]
    features_b: NDArray[np.float64]

    @property
    def size(self) -> int:
        return int(self.vote_id.size)

    def select(self, mask: NDArray[np.bool_]) -> VoteArrays:
        """The votes where ``mask`` is true."""
        return VoteArrays(
            vote_id=self.vote_id[mask], model_a=self.model_a[mask], model_b=self.model_b[mask],
            outcome=self.outcome[mask], voter=self.voter[mask], anonymous=self.anonymous[mask],
            flagged=self.flagged[mask], anomalous=self.anomalous[mask],
            categories={c: m[mask] for c, m in self.categories.items()},
            features_a=self.features_a[mask], features_b=self.features_b[mask],
        )  # fmt: skip


_OUTCOME_CODE = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
OUTCOMES = ("a", "b", "tie", "both_bad")  # code -> Vote.winner
ANOMALOUS_FLAG = "anomalous_voter"  # Vote.Flag.ANOMALOUS_VOTER
_STYLE_COLS = tuple(
    f"{side}_{col}"
    for side in "ab"
    for col in ("length", "header_count", "list_count", "bold_count")
)
_WINNER_SQL = "CASE v.winner " + " ".join(f"WHEN '{w}' THEN {c}" for w, c in _OUTCOME_CODE.items())


def arena_vote_arrays(*, ids: list[int] | None = None) -> VoteArrays:
    """Read every vote (or those with the given ids) once: one row per vote.

    Votes of named battles are read too (marked by ``anonymous``), so that the count rebuild
    knows every vote id it has seen. Votes are returned in id order (their time order); a vote
    whose battle is not visible yet is left out (the rebuild's catch-up counts it).
    """
    if ids is not None and not ids:
        return _assemble_empty()
    if connection.vendor == "postgresql":
        return _arrays_postgresql(ids)
    return _arrays_generic(ids)


_CHUNK = 131072  # votes per COPY row (arrays); see arena.counts.copy_rows


def _arrays_postgresql(ids: list[int] | None) -> VoteArrays:
    """Two COPYs, votes then battles (a battle commits before its votes, so reading battles
    second sees every battle of the votes read), joined in numpy. Each COPY row carries the
    columns of ~131k rows as binary int arrays (``array_agg``), so nothing is parsed or
    allocated per vote in Python. Strings are replaced by 64-bit hashes in SQL (voter; a
    battle's category list), and the few distinct category lists are fetched once each."""
    vote, battle = Vote._meta.db_table, Battle._meta.db_table
    flag = json.dumps([ANOMALOUS_FLAG])
    where, params = ("WHERE v.id = ANY(%s)", [list(ids)]) if ids is not None else ("", None)

    # Few, packed columns: the server's cost is per aggregated element. Style counts are
    # clamped to their field width (lengths 31 bits, markdown counts 21 bits).
    def md(side: str) -> str:
        return " | ".join(
            f"(LEAST(v.{side}_{c}, 2097151)::int8 << {shift})"
            for c, shift in (("header_count", 42), ("list_count", 21), ("bold_count", 0))
        )

    cols = [
        "v.id", "v.battle_id", "hashtextextended(v.voter, 0)",
        f"(({_WINNER_SQL} END)"
        " | CASE WHEN v.flags IS NULL OR v.flags = '[]'::jsonb THEN 0 ELSE 4 END"
        f" | CASE WHEN v.flags @> '{flag}'::jsonb THEN 8 ELSE 0 END)",
        "(v.a_length::int8 << 32) | v.b_length::int8", md("a"), md("b"),
    ]  # fmt: skip
    agg = ", ".join(f"array_agg({c})" for c in cols)
    bcols = [
        "b.id", "(b.model_a_id::int8 << 32) | b.model_b_id::int8",
        "(hashtextextended(COALESCE(b.categories::text, '[]'), 0) & ~1::int8)"
        " | CASE WHEN b.mode = 'anonymous' THEN 0 ELSE 1 END",
    ]  # fmt: skip
    bagg = ", ".join(f"array_agg({c})" for c in bcols)
    if ids is not None:
        b_where = f"WHERE b.id IN (SELECT battle_id FROM {vote} v WHERE v.id = ANY(%s))"
        vrows = copy_rows(f"SELECT {agg} FROM {vote} v {where} GROUP BY v.id / {_CHUNK}", params)
        brows = copy_rows(
            f"SELECT {bagg} FROM {battle} b {b_where} GROUP BY b.id / {_CHUNK}", params
        )
    else:
        vrows, brows = _read_split(
            f"SELECT {agg} FROM {vote} v WHERE v.id BETWEEN %s AND %s GROUP BY v.id / {_CHUNK}",
            f"SELECT {bagg} FROM {battle} b WHERE b.id BETWEEN %s AND %s GROUP BY b.id / {_CHUNK}",
        )
    if not vrows or not brows:
        return _assemble_empty()
    v = _columns(vrows, len(cols))
    bt = _columns(brows, len(bcols))
    row, found = _join(bt[0], v[1])
    # The low bit of the category-list hash carries "named battle".
    named = (bt[2] & 1) == 1
    cat_hash = bt[2] >> 1
    uniq, first = np.unique(cat_hash, return_index=True)
    cat_values = _category_lists(bid_first=bt[0][first])
    code = v[3][found]
    m21, m31 = (1 << 21) - 1, (1 << 31) - 1
    lengths, md_a, md_b = v[4][found], v[5][found], v[6][found]
    style = np.column_stack(
        [lengths >> 32, md_a >> 42, (md_a >> 21) & m21, md_a & m21,
         lengths & m31, md_b >> 42, (md_b >> 21) & m21, md_b & m21]
    ).astype(np.float64)  # fmt: skip
    ab = bt[1][row]
    return _assemble(
        vote_id=v[0][found], model_a=ab >> 32, model_b=ab & ((1 << 32) - 1), outcome=code & 3,
        voter=v[2][found], anonymous=~named[row], flagged=(code & 4) > 0,
        anomalous=(code & 8) > 0, cat_code=np.searchsorted(uniq, cat_hash[row]),
        cat_values=cat_values, style=style,
    )  # fmt: skip


def _columns(rows: list[Any], n: int) -> list[NDArray[np.int64]]:
    """Concatenate array rows (groups of ids) in id order: mostly sorted output, cheap."""
    parts = [[int_array(r[k]) for k in range(n)] for r in rows]
    parts.sort(key=lambda p: int(p[0][0]) if p[0].size else 0)
    return [np.concatenate([p[k] for p in parts]) for k in range(n)]


def _join(keys: NDArray[np.int64], wanted: NDArray[np.int64]) -> tuple[NDArray, NDArray]:
    """Positions in ``keys`` (unique ids) of each ``wanted`` id, and which ones exist."""
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo < 4 * keys.size + 1024:  # dense ids (the usual case): a lookup table
        lookup = np.full(hi - lo + 1, -1, dtype=np.int64)
        lookup[keys - lo] = np.arange(keys.size)
        inside = (wanted >= lo) & (wanted <= hi)
        pos = np.full(wanted.size, -1, dtype=np.int64)
        pos[inside] = lookup[wanted[inside] - lo]
        found = pos >= 0
        return pos[found], found
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, wanted), keys.size - 1)
    found = sorted_keys[pos] == wanted
    return order[pos][found], found


READ_THREADS = 4  # id ranges read at once per table: server-side work overlaps with decoding


def _read_split(vote_sql: str, battle_sql: str) -> tuple[list[Any], list[Any]]:
    """Run the vote and battle reads over ``READ_THREADS`` id ranges each, concurrently.

    One backend per range: on a 2-core host the server-side work (scan, aggregate, encode)
    is the read's cost, and one backend uses one core. Each thread has its own connection,
    hence its own snapshot; that is fine here: the count rebuild catches up every vote it did
    not see, and a vote whose battle a range did not see yet is simply left out (and caught
    up). Inside a transaction (tests) other connections could not see its rows: read in this
    connection, one range at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def bounds(table: str) -> list[tuple[int, int]]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MIN(id), MAX(id) FROM {table}")
            lo, hi = cursor.fetchone()
        if lo is None:
            return []
        k = READ_THREADS
        step = (hi - lo) // k + 1
        return [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(k)]

    jobs = [("v", vote_sql, r) for r in bounds(Vote._meta.db_table)]
    jobs += [("b", battle_sql, r) for r in bounds(Battle._meta.db_table)]
    if connection.in_atomic_block or len(jobs) <= 2:
        results = [copy_rows(sql, list(r)) for _, sql, r in jobs]
    else:

        def run(job: tuple[str, str, tuple[int, int]]) -> list[Any]:
            try:
                return copy_rows(job[1], list(job[2]))
            finally:
                connections.close_all()  # this thread's connection only

        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            results = list(pool.map(run, jobs))
    vrows = [
        row for (kind, _, _), rows in zip(jobs, results, strict=True) if kind == "v" for row in rows
    ]
    brows = [
        row for (kind, _, _), rows in zip(jobs, results, strict=True) if kind == "b" for row in rows
    ]
    return vrows, brows


def _category_lists(*, bid_first: NDArray[np.int64]) -> list[list[str]]:
    """The category list of each given battle (one per distinct list), in the given order."""
    if not bid_first.size:
        return []
    rows = dict(Battle.objects.filter(pk__in=bid_first.tolist()).values_list("pk", "categories"))
    return [_parse_json_list(rows.get(int(b))) for b in bid_first]


def _arrays_generic(ids: list[int] | None) -> VoteArrays:
    vote, battle = Vote._meta.db_table, Battle._meta.db_table
    style = ", ".join(f"v.{c}" for c in _STYLE_COLS)
    where = f"WHERE v.id IN ({', '.join(str(int(i)) for i in ids)})" if ids is not None else ""
    sql = (
        f"SELECT v.id, b.model_a_id, b.model_b_id, {_WINNER_SQL} END, v.voter,"
        f" CASE WHEN b.mode = 'anonymous' THEN 1 ELSE 0 END, v.flags, b.categories, {style}"
        f" FROM {vote} v JOIN {battle} b ON b.id = v.battle_id {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    if not rows:
        return _assemble_empty()
    cols = list(zip(*rows, strict=True))
    voter, _ = _encode(cols[4])
    flags = [_parse_json_list(f) for f in cols[6]]
    cat_code, cat_keys = _encode([json.dumps(_parse_json_list(c)) for c in cols[7]])
    return _assemble(
        vote_id=np.array(cols[0], dtype=np.int64),
        model_a=np.array(cols[1], dtype=np.int64),
        model_b=np.array(cols[2], dtype=np.int64),
        outcome=np.array(cols[3], dtype=np.int64),
        voter=voter,
        anonymous=np.array(cols[5], dtype=np.int64) == 1,
        flagged=np.array([bool(f) for f in flags], dtype=bool),
        anomalous=np.array([ANOMALOUS_FLAG in f for f in flags], dtype=bool),
        cat_code=cat_code,
        cat_values=[json.loads(k) for k in cat_keys],
        style=np.array(cols[8:16], dtype=np.float64).T,
    )


def _parse_json_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    parsed = json.loads(value)
    return [str(v) for v in parsed] if isinstance(parsed, list) else []


def _encode(values: Any) -> tuple[NDArray[np.int64], list[Any]]:
    """Dictionary-encode a Python sequence (codes, distinct values in first-seen order)."""
    index: dict[Any, int] = {}
    codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values)
    )
    return codes, list(index)


def _assemble_empty() -> VoteArrays:
    z = np.zeros(0, dtype=np.int64)
    return _assemble(
        vote_id=z, model_a=z, model_b=z, outcome=z, voter=z, anonymous=z == 1, flagged=z == 1,
        anomalous=z == 1, cat_code=z, cat_values=[], style=np.zeros((0, 8)),
    )  # fmt: skip


def _assemble(
    *,
    vote_id: NDArray[np.int64],
    model_a: NDArray[np.int64],
    model_b: NDArray[np.int64],
    outcome: NDArray[np.int64],
    voter: NDArray[np.int64],
    anonymous: NDArray[np.bool_],
    flagged: NDArray[np.bool_],
    anomalous: NDArray[np.bool_],
    cat_code: NDArray[np.int64],
    cat_values: list[list[str]],
    style: NDArray[np.float64],
) -> VoteArrays:
    n = vote_id.size
    order = None
    if n > 1 and not bool(np.all(vote_id[1:] > vote_id[:-1])):
        order = np.argsort(vote_id, kind="stable")

    def o(x: NDArray) -> NDArray:
        return x if order is None else x[order]

    cat_code = o(cat_code)
    style = o(style) if n else np.zeros((0, 8))
    # A category mask from the (few) distinct category lists: one lookup per vote.
    masks = {"all": np.ones(n, dtype=bool)}
    for c in sorted({c for cs in cat_values for c in cs} - {"all"}):
        has = np.array([c in cs for cs in cat_values], dtype=bool)
        masks[c] = has[cat_code] if n else np.zeros(0, dtype=bool)
    return VoteArrays(
        vote_id=o(vote_id),
        model_a=o(model_a),
        model_b=o(model_b),
        outcome=o(outcome).astype(np.int8),
        voter=o(voter),
        anonymous=o(anonymous),
        flagged=o(flagged).copy(),
        anomalous=o(anomalous).copy(),
        categories=masks,
        features_a=style[:, :4],
        features_b=style[:, 4:],
    )


def vote_ids() -> NDArray[np.int64]:
    """Every vote id, ascending (the count rebuild's catch-up reads this under its lock)."""
    table = Vote._meta.db_table
    if connection.vendor != "postgresql":
        return np.array(sorted(Vote.objects.values_list("id", flat=True)), dtype=np.int64)
    rows = copy_rows(f"SELECT array_agg(id) FROM {table} GROUP BY id / {_CHUNK}")
    if not rows:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([int_array(r[0]) for r in rows]))


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
    """Pairs expanded from annotators' accepted rankings, or None when there are none.

    A ranking of K responses becomes its K(K-1)/2 pairs between registered models (responses
    without a source model, or two from the same model, are skipped): the better-ranked model
    first with outcome 0, or outcome 2 for responses tied in one group. Each pair weighs
    ``trust / (K - 1)``, so one annotation counts about as much as one arena vote per model,
    scaled by how much the annotator is trusted. Fitted on their own and written as
    ``source="annotation"`` snapshots, never mixed into the arena numbers.
    """
    from annotations.selectors import accepted_rankings

    a: list[int] = []
    b: list[int] = []
    o: list[int] = []
    w: list[float] = []
    for ranking in accepted_rankings():
        llm_of = {r["index"]: r.get("llm_id") for r in ranking["responses"]}
        k = len(ranking["responses"])
        if k < 2:
            continue
        weight = float(ranking.get("trust") or 0.0) / (k - 1)
        if weight <= 0:
            continue
        groups = [[llm_of.get(i) for i in group] for group in ranking["ranking"]]
        for gi, group in enumerate(groups):
            for x, first in enumerate(group):
                # ties inside the group
                for second in group[x + 1 :]:
                    if first and second and first != second:
                        a.append(first), b.append(second), o.append(2), w.append(weight)
                # wins over every later group
                for later in groups[gi + 1 :]:
                    for second in later:
                        if first and second and first != second:
                            a.append(first), b.append(second), o.append(0), w.append(weight)
    if not a:
        return None
    return a, b, o, w
