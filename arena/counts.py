"""Vote counts per (category, ordered model pair, outcome): kept current and rebuilt.

``counts_add_vote`` runs inside the vote's own transaction, so a vote and its counts commit or
roll back together and the Bradley-Terry leaderboard reads O(pairs) rows instead of every vote.
``counts_rebuild`` recounts everything from the votes (applying flags set after the vote) and
reports how far the table had drifted.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from arena.models import Battle, Vote, VoteCount

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
    if not vote_counts(vote):
        return
    battle = vote.battle
    categories = sorted({"all", *(str(c) for c in (battle.categories or []))})
    with connection.cursor() as cursor:
        cursor.executemany(
            _UPSERT,
            [(c, battle.model_a_id, battle.model_b_id, vote.winner) for c in categories],
        )


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


def counts_rebuild() -> dict[str, int]:
    """Rewrite the counts table from the votes; returns the drift it corrected.

    Race: a vote committing between the recount and the rewrite would be counted by its own
    increment and then overwritten. On PostgreSQL the table is locked in EXCLUSIVE mode first:
    the lock waits for vote transactions that already incremented (so the recount sees them) and
    makes later increments wait until the rewrite commits (so they apply on top). SQLite has a
    single writer, which gives the same ordering.

    Returns {"cells": cells after, "changed": cells whose count changed (added, removed or
    different), "votes_drift": sum of |difference| over cells, "votes": votes in "all"}.
    """
    table = VoteCount._meta.db_table
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        truth = recount()
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
                to_create.append(
                    VoteCount(category=c, model_a_id=a, model_b_id=b, outcome=o, count=n)
                )
        for chunk in _chunks(stale, 900):
            VoteCount.objects.filter(pk__in=chunk).delete()
        VoteCount.objects.bulk_update(to_update, ["count"], batch_size=1000)
        VoteCount.objects.bulk_create(to_create, batch_size=1000)
    return {
        "cells": len(truth),
        "changed": len(stale) + len(to_update) + len(to_create),
        "votes_drift": int(drift),
        "votes": sum(n for (c, *_), n in truth.items() if c == "all"),
        "at": int(timezone.now().timestamp()),
    }


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["counts_add_vote", "counts_rebuild", "recount", "vote_counts"]
