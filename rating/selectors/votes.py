"""Per-vote arrays for the full recompute (style control, anomaly detection, count rebuild):
every vote read once, one row per vote, through binary COPY on PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, connections
from numpy.typing import NDArray

from arena.counts import copy_rows
from arena.models import Battle, Vote
from core.pgcopy import int_array


@dataclass
class VoteArrays:
    """Every vote in id (= time) order, as engine-ready arrays (LLM pks as model ids).

    One row per vote, read from the votes and their battles only: the style features are the
    per-side conversation totals stored on the vote. ``voter`` holds integer voter codes (equal
    codes = same voter); ``categories`` one mask per category; ``anonymous`` marks votes of
    anonymous battles (only they are rated and counted); ``flagged`` votes with any flag,
    ``anomalous`` those with the anomalous-voter flag; ``flag_bits`` has bit k set when the vote
    has the k-th flag of ``FLAGS`` (``Vote.Flag``; other flags only set ``flagged``).
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
    flag_bits: NDArray[np.int64]

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
            flag_bits=self.flag_bits[mask],
        )  # fmt: skip

    def mark(self, target: NDArray[np.bool_], flag: str) -> None:
        """Record that the votes where ``target`` is true now have ``flag``."""
        self.flagged[target] = True
        self.flag_bits[target] |= 1 << FLAGS.index(flag)
        if flag == ANOMALOUS_FLAG:
            self.anomalous[target] = True

    def excluded(self, mask: NDArray[np.bool_]) -> tuple[int, dict[str, int]]:
        """Flagged votes where ``mask`` is true: their number and the count per flag."""
        hit = mask & self.flagged
        bits = self.flag_bits[hit]
        return int(hit.sum()), {f: int(((bits >> k) & 1).sum()) for k, f in enumerate(FLAGS)}


_OUTCOME_CODE = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
OUTCOMES = ("a", "b", "tie", "both_bad")  # code -> Vote.winner
ANOMALOUS_FLAG = Vote.Flag.ANOMALOUS_VOTER.value
FLAGS: tuple[str, ...] = tuple(Vote.Flag.values)  # bit k of flag_bits = FLAGS[k]
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
    flag_bits = "".join(
        f" | CASE WHEN v.flags @> '{json.dumps([flag])}'::jsonb THEN {16 << k} ELSE 0 END"
        for k, flag in enumerate(FLAGS)
    )
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
        # outcome in bits 0-1, "any flag" in bit 2, flag k in bit 4 + k (only flagged votes,
        # which are few, evaluate the containment tests)
        f"(({_WINNER_SQL} END)"
        f" | CASE WHEN v.flags IS NULL OR v.flags = '[]'::jsonb THEN 0 ELSE 4{flag_bits} END)",
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
        flag_bits=code >> 4, cat_code=np.searchsorted(uniq, cat_hash[row]),
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
        flag_bits=np.array(
            [sum(1 << k for k, flag in enumerate(FLAGS) if flag in f) for f in flags],
            dtype=np.int64,
        ),
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
        flag_bits=z, cat_code=z, cat_values=[], style=np.zeros((0, 8)),
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
    flag_bits: NDArray[np.int64],
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
        anomalous=(o(flag_bits) >> FLAGS.index(ANOMALOUS_FLAG)) & 1 == 1,
        flag_bits=o(flag_bits).astype(np.int64),
        categories=masks,
        features_a=style[:, :4],
        features_b=style[:, 4:],
    )
