"""Vote counts per (category, ordered model pair, outcome): kept current and rebuilt.

``counts_add_vote`` runs inside the vote's own transaction, so a vote and its counts commit or
roll back together and the Bradley-Terry leaderboard reads O(pairs) rows instead of every vote.
``counts_rebuild`` recounts everything from the votes (applying flags set after the vote) and
reports how far the table had drifted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from arena.models import Battle, Vote, VoteCount
from core import pgcopy

Cell = tuple[str, int, int, str]

# One statement per cell: an additive upsert. ``bulk_create(update_conflicts=True)`` would
# write ``count = EXCLUDED.count`` (last writer wins), losing increments of concurrent votes;
# ``count = count + 1`` inside ON CONFLICT is applied under the row lock, so two voters that hit
# the same cell at once both count. PostgreSQL and SQLite (>= 3.24) share this syntax.
_UPSERT = (
    f"INSERT INTO {VoteCount._meta.db_table} (category, model_a_id, model_b_id, outcome, count) "
    "VALUES (%s, %s, %s, %s, 1) "
    "ON CONFLICT (category, model_a_id, model_b_id, outcome) "
    f"DO UPDATE SET count = {VoteCount._meta.db_table}.count + 1"
)


def _upsert_sql(n: int) -> str:
    values = ", ".join(["(%s, %s, %s, %s, 1)"] * n)
    return _UPSERT.replace("VALUES (%s, %s, %s, %s, 1)", f"VALUES {values}")


def vote_counts(vote: Vote) -> bool:
    """Whether ``vote`` belongs in the counts: anonymous battles, no flag."""
    return not vote.flags and vote.battle.mode == Battle.Mode.ANONYMOUS


def counts_add_vote(vote: Vote) -> None:
    """Count ``vote`` once in every category its battle is tagged with (always "all").

    Precondition: called inside the transaction that created the vote (it asserts so), so the
    counts can never disagree with the committed votes. Flagged votes and named battles are
    skipped; a flag set later is applied by ``counts_rebuild``.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("counts_add_vote must run inside the vote's transaction")
    statement = counts_add_vote_sql(vote)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def counts_add_vote_sql(vote: Vote) -> tuple[str, list[object]] | None:
    """The one upsert statement (with its parameters) that counts ``vote``, or None when the vote
    is not counted. The vote service runs it inside its own write statement on PostgreSQL."""
    if not vote_counts(vote):
        return None
    battle = vote.battle
    categories = sorted({"all", *(str(c) for c in (battle.categories or []))})
    rows = [(c, battle.model_a_id, battle.model_b_id, vote.winner) for c in categories]
    # One statement for all the vote's categories (each cell appears once, so the multi-row
    # upsert never touches a row twice).
    return _upsert_sql(len(rows)), [value for row in rows for value in row]


def _recount_sql() -> str:
    vote, battle = Vote._meta.db_table, Battle._meta.db_table
    if connection.vendor == "postgresql":
        expand = "jsonb_array_elements_text(b.categories::jsonb)"
        not_flagged = "(v.flags IS NULL OR jsonb_array_length(v.flags::jsonb) = 0)"
        cat_col = "cat.value"
        join = f"CROSS JOIN LATERAL {expand} AS cat(value)"
    else:
        not_flagged = "(v.flags IS NULL OR json_array_length(v.flags) = 0)"
        cat_col = "cat.value"
        join = "CROSS JOIN json_each(b.categories) AS cat"
    # "all" is added on top of the tags, so a battle stored without it still counts overall.
    return (
        f"SELECT c, model_a_id, model_b_id, winner, COUNT(*) FROM ("
        f" SELECT {cat_col} AS c, b.model_a_id, b.model_b_id, v.winner, v.id AS vid"
        f" FROM {vote} v JOIN {battle} b ON b.id = v.battle_id {join}"
        f" WHERE b.mode = 'anonymous' AND {not_flagged} AND {cat_col} <> 'all'"
        f" UNION ALL"
        f" SELECT 'all', b.model_a_id, b.model_b_id, v.winner, v.id"
        f" FROM {vote} v JOIN {battle} b ON b.id = v.battle_id"
        f" WHERE b.mode = 'anonymous' AND {not_flagged}"
        f") x GROUP BY c, model_a_id, model_b_id, winner"
    )


def recount() -> dict[Cell, int]:
    """Counts recomputed from the votes (what the table should hold)."""
    with connection.cursor() as cursor:
        cursor.execute(_recount_sql())
        return {(str(c), int(a), int(b), str(o)): int(n) for c, a, b, o, n in cursor.fetchall()}


@dataclass(frozen=True)
class CountCells:
    """Vote counts as parallel arrays (one entry per cell; repeated cells are summed).

    ``count`` may be negative in a correction (votes deleted since they were read).
    """

    category: Sequence[str]
    model_a: Sequence[int]
    model_b: Sequence[int]
    outcome: Sequence[str]
    count: Sequence[int]

    def __len__(self) -> int:
        return len(self.count)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, int, int, str, int]]) -> CountCells:
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        return cls(
            np.array(cols[0], dtype=object), np.array(cols[1], dtype=np.int64),
            np.array(cols[2], dtype=np.int64), np.array(cols[3], dtype=object),
            np.array(cols[4], dtype=np.int64),
        )  # fmt: skip

    def concat(self, other: CountCells) -> CountCells:
        def cat(x: Sequence, y: Sequence, dtype: Any) -> np.ndarray:
            return np.concatenate([np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype)])

        return CountCells(
            cat(self.category, other.category, object), cat(self.model_a, other.model_a, np.int64),
            cat(self.model_b, other.model_b, np.int64), cat(self.outcome, other.outcome, object),
            cat(self.count, other.count, np.int64),
        )  # fmt: skip

    def rows(self) -> Iterator[tuple[str, int, int, str, int]]:
        return zip(
            (str(c) for c in self.category), (int(x) for x in self.model_a),
            (int(x) for x in self.model_b), (str(o) for o in self.outcome),
            (int(n) for n in self.count), strict=True,
        )  # fmt: skip


def counts_rebuild(
    cells: CountCells | None = None,
    *,
    catch_up: Callable[[], CountCells | None] | None = None,
) -> dict[str, int]:
    """Rewrite the counts table to the truth; returns the drift it corrected.

    Without arguments the truth is ``recount()`` (SQL over every vote, under the lock: simple,
    slow at a million votes). A caller that has already read the votes passes their ``cells``
    (the truth as of its read) and ``catch_up`` (see ``counts_rebuild_cells``).

    Returns {"cells": cells after, "changed": cells whose count changed (added, removed or
    different), "votes_drift": sum of |difference| over cells, "votes": votes in "all"}.
    """
    if cells is not None:
        return counts_rebuild_cells(cells, catch_up=catch_up)[0]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {VoteCount._meta.db_table} IN EXCLUSIVE MODE")
        report = _replace(recount())
    report["at"] = int(timezone.now().timestamp())
    return report


def counts_rebuild_cells(
    cells: CountCells, *, catch_up: Callable[[], CountCells | None] | None = None
) -> tuple[dict[str, int], CountCells]:
    """Rewrite the counts table to ``cells`` plus ``catch_up()``; only differences are written.

    ``cells`` is the truth as of the caller's read of the votes; ``catch_up`` runs under the
    lock and returns the correction for votes committed (or deleted) since that read.
    Returns the drift report (as ``counts_rebuild``) and the cells now in the table.

    Race: a vote counts itself by an increment in its own transaction. The counts table is
    locked in EXCLUSIVE mode (plain reads go on) before the truth is final: the lock waits for
    vote transactions that already incremented, so those votes are committed and visible to
    ``catch_up``; later increments wait until this transaction commits and apply on top of
    it. So a vote committed while the caller was reading is counted exactly once: it is not
    in ``cells``, ``catch_up`` finds it, and its own increment is neither lost nor repeated.
    The lock is held only for the catch-up, one read of the table and the writes of the
    differences (well under a second at 1M votes), not while the votes are read or fitted.
    SQLite has a single writer, which gives the same ordering.
    """
    table = VoteCount._meta.db_table
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        extra = catch_up() if catch_up else None
        truth = _aggregate(cells if extra is None else cells.concat(extra))
        current = _aggregate(table_cells())
        report, changes = _diff(truth, current)
        if len(changes):
            _write_changes(changes)
    report["at"] = int(timezone.now().timestamp())
    return report, truth


def table_cells(categories: list[str] | None = None) -> CountCells:
    """The counts table (or the given categories' cells) as cells; COPY on PostgreSQL."""
    table = VoteCount._meta.db_table
    if connection.vendor != "postgresql":
        qs = VoteCount.objects.all()
        if categories is not None:
            qs = qs.filter(category__in=categories)
        cols = ("category", "model_a_id", "model_b_id", "outcome", "count")
        return CountCells.from_rows(list(qs.values_list(*cols)))
    # One row per category with its cells as arrays (see copy_rows).
    where, params = (
        ("WHERE category = ANY(%s)", [categories]) if categories is not None else ("", None)
    )
    rows = copy_rows(
        f"SELECT category, array_agg(model_a_id), array_agg(model_b_id),"
        f" array_agg(CASE outcome WHEN 'a' THEN 0 WHEN 'b' THEN 1 WHEN 'tie' THEN 2 ELSE 3 END),"
        f" array_agg(count) FROM {table} {where} GROUP BY category",
        params,
    )
    outcomes = np.array(list(_OUTCOME_INDEX), dtype=object)
    parts = []
    for cat, a, b, o, n in rows:
        assert cat is not None
        a_arr = pgcopy.int_array(a)
        parts.append(
            CountCells(
                np.full(a_arr.size, cat.decode(), dtype=object), a_arr, pgcopy.int_array(b),
                outcomes[pgcopy.int_array(o)], pgcopy.int_array(n),
            )
        )  # fmt: skip
    out = CountCells.from_rows([])
    for part in parts:
        out = out.concat(part)
    return out


def counts_totals() -> dict[str, int]:
    """The sum of each category's counts, for categories whose sum is positive (one scan)."""
    rows = (
        VoteCount.objects.values("category").annotate(n=Sum("count")).values_list("category", "n")
    )
    return {c: int(n or 0) for c, n in rows if n}


def counts_of_model(
    llm_id: int, *, category: str
) -> tuple[list[tuple[int, str, int]], list[tuple[int, str, int]]]:
    """Positive cells of one model in one category as (opponent pk, outcome, count): first
    those where it was model A, then those where it was model B."""
    cells = VoteCount.objects.filter(category=category, count__gt=0)
    as_a = list(cells.filter(model_a_id=llm_id).values_list("model_b_id", "outcome", "count"))
    as_b = list(cells.filter(model_b_id=llm_id).values_list("model_a_id", "outcome", "count"))
    return as_a, as_b


def copy_rows(sql: str, params: list[Any] | None = None) -> list[list[bytes | None]]:
    """PostgreSQL: ``COPY (sql) TO STDOUT (FORMAT binary)``, each row as raw field bytes.

    Meant for queries that return a FEW rows of big arrays (``array_agg`` per group): COPY
    sends one protocol message per row and psycopg costs microseconds per message, so a
    million single-value rows would spend seconds in Python; a handful of array rows does not.
    Decode fields with ``core.pgcopy.int_array`` or ``.decode()``.
    """
    import psycopg

    connection.ensure_connection()
    # A client-side cursor: COPY takes no bind parameters, so they are merged into the text.
    with psycopg.ClientCursor(connection.connection) as cur:
        query = cur.mogrify(sql, params) if params else sql
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    return pgcopy.parse(data)


def _codes(values: Sequence[str], index: dict[str, int]) -> np.ndarray:
    """Integer codes of string values (new values are added to ``index``); vectorised."""
    arr = np.asarray(values)
    if not arr.size:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
    lookup = np.array([index.setdefault(str(u), len(index)) for u in uniq], dtype=np.int64)
    return lookup[inverse.reshape(-1)]


_OUTCOME_INDEX = {w: k for k, w in enumerate(("a", "b", "tie", "both_bad"))}


def _aggregate(cells: CountCells) -> CountCells:
    """Sum repeated cells, drop cells <= 0, sort by (category, a, b, outcome)."""
    if not len(cells):
        return cells
    cat_index: dict[str, int] = {}
    c = _codes(cells.category, cat_index)
    o = _codes(cells.outcome, dict(_OUTCOME_INDEX))
    a, b = np.asarray(cells.model_a, dtype=np.int64), np.asarray(cells.model_b, dtype=np.int64)
    names = np.array(sorted(cat_index), dtype=object)
    rank = np.empty(len(cat_index), dtype=np.int64)
    rank[[cat_index[n] for n in names]] = np.arange(len(names))
    order = np.lexsort((o, b, a, rank[c]))
    c, a, b, o = rank[c][order], a[order], b[order], o[order]
    n = np.asarray(cells.count, dtype=np.int64)[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(c) != 0) | (np.diff(a) != 0) | (np.diff(b) != 0) | (np.diff(o) != 0)
    starts = np.flatnonzero(new)
    total = np.add.reduceat(n, starts)
    keep = total > 0
    s = starts[keep]
    outcomes = np.array(list(_OUTCOME_INDEX), dtype=object)
    return CountCells(names[c[s]], a[s], b[s], outcomes[o[s]], total[keep])


def _diff(truth: CountCells, current: CountCells) -> tuple[dict[str, int], CountCells]:
    """Drift report and the cells to write (count 0 = delete); inputs aggregated (unique).

    Vectorised: each cell becomes one int64 key over shared category / model indexes.
    """
    cats = np.array(
        sorted({*np.asarray(truth.category).tolist(), *np.asarray(current.category).tolist()}),
        dtype=object,
    )
    pks = np.unique(np.concatenate([np.asarray(x.model_a, dtype=np.int64) for x in (truth, current)]
                                   + [np.asarray(x.model_b, dtype=np.int64) for x in (truth, current)]))  # fmt: skip
    p = max(len(pks), 1)
    cat_index = {c: k for k, c in enumerate(cats.tolist())}

    def keys(x: CountCells) -> np.ndarray:
        c = _codes(x.category, cat_index)
        o = _codes(x.outcome, dict(_OUTCOME_INDEX))
        ia = np.searchsorted(pks, np.asarray(x.model_a, dtype=np.int64))
        ib = np.searchsorted(pks, np.asarray(x.model_b, dtype=np.int64))
        return ((c * p + ia) * p + ib) * 4 + o

    kt, kc = keys(truth), keys(current)
    every = np.union1d(kt, kc)
    t = np.zeros(every.size, dtype=np.int64)
    c = np.zeros(every.size, dtype=np.int64)
    t[np.searchsorted(every, kt)] = np.asarray(truth.count, dtype=np.int64)
    c[np.searchsorted(every, kc)] = np.asarray(current.count, dtype=np.int64)
    # A stored cell with count 0 that the truth lacks is removed (and counts as a change).
    stored = np.zeros(every.size, dtype=bool)
    stored[np.searchsorted(every, kc)] = True
    changed = (t != c) | (stored & (t == 0))
    k = every[changed]
    outcomes = np.array(list(_OUTCOME_INDEX), dtype=object)
    pair = k // 4
    changes = CountCells(
        cats[pair // (p * p)], pks[(pair // p) % p], pks[pair % p], outcomes[k % 4], t[changed]
    )
    total_all = (
        np.asarray(truth.count)[np.asarray(truth.category) == "all"].sum() if len(truth) else 0
    )
    report = {
        "cells": int((t > 0).sum()),
        "changed": int(changed.sum()),
        "votes_drift": int(np.abs(t - c)[changed].sum()),
        "votes": int(total_all),
    }
    return report, changes


def _write_changes(changes: CountCells) -> None:
    """Apply changed cells (count 0 deletes the cell), inside the caller's lock."""
    table = VoteCount._meta.db_table
    keys = "category, model_a_id, model_b_id, outcome"
    gone = [r[:4] for r in changes.rows() if r[4] == 0]
    upsert = [r for r in changes.rows() if r[4] > 0]
    if connection.vendor != "postgresql":
        for c, a, b, o in gone:
            VoteCount.objects.filter(category=c, model_a_id=a, model_b_id=b, outcome=o).delete()
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} ({keys}, count) VALUES (%s, %s, %s, %s, %s)"
                f" ON CONFLICT ({keys}) DO UPDATE SET count = excluded.count",
                upsert,
            )
        return
    connection.ensure_connection()
    with connection.connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE pa_counts_changes (category text, model_a_id bigint,"
            " model_b_id bigint, outcome text, count bigint) ON COMMIT DROP"
        )
        with cur.copy(f"COPY pa_counts_changes ({keys}, count) FROM STDIN") as copy:
            for row in changes.rows():
                copy.write_row(row)
        same = " AND ".join(f"t.{k} = c.{k}" for k in keys.split(", "))
        cur.execute(f"DELETE FROM {table} c USING pa_counts_changes t WHERE {same} AND t.count = 0")
        cur.execute(
            f"INSERT INTO {table} ({keys}, count) SELECT {keys}, count FROM pa_counts_changes"
            f" WHERE count > 0 ON CONFLICT ({keys}) DO UPDATE SET count = excluded.count"
        )
        cur.execute("DROP TABLE pa_counts_changes")


def _replace(truth: dict[Cell, int]) -> dict[str, int]:
    """Rewrite the table to ``truth`` (inside the caller's transaction and lock)."""
    current = {
        (c, a, b, o): (pk, n)
        for pk, c, a, b, o, n in VoteCount.objects.values_list(
            "pk", "category", "model_a_id", "model_b_id", "outcome", "count"
        )
    }
    stale = [pk for key, (pk, _) in current.items() if key not in truth]
    drift = sum(n for key, (_, n) in current.items() if key not in truth)
    to_update: list[VoteCount] = []
    to_create: list[VoteCount] = []
    for key, n in truth.items():
        if key in current:
            pk, old = current[key]
            if old != n:
                drift += abs(old - n)
                to_update.append(VoteCount(pk=pk, count=n))
        else:
            drift += n
            c, a, b, o = key
            to_create.append(VoteCount(category=c, model_a_id=a, model_b_id=b, outcome=o, count=n))
    for chunk in _chunks(stale, 900):
        VoteCount.objects.filter(pk__in=chunk).delete()
    VoteCount.objects.bulk_update(to_update, ["count"], batch_size=1000)
    VoteCount.objects.bulk_create(to_create, batch_size=1000)
    return {
        "cells": len(truth),
        "changed": len(stale) + len(to_update) + len(to_create),
        "votes_drift": int(drift),
        "votes": sum(n for (c, *_), n in truth.items() if c == "all"),
    }


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "CountCells",
    "counts_add_vote",
    "counts_of_model",
    "counts_rebuild",
    "counts_rebuild_cells",
    "counts_totals",
    "copy_rows",
    "recount",
    "table_cells",
    "vote_counts",
]
