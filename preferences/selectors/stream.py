"""The one stream: arena votes, then annotation rankings' pairs, in a fixed order."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Max, QuerySet

from arena.models import LLM, Battle, Vote
from preferences.selectors import rankings
from preferences.selectors.arena import iter_arena_pairs, vote_queryset
from preferences.selectors.pairs import (
    DEFAULT_CHUNK,
    SOURCE_ARENA,
    Pair,
    PairFilters,
    StreamPosition,
    expand_ranking,
)
from preferences.selectors.rankings import iter_rankings, pair_allowed


def iter_pairs(
    filters: PairFilters,
    *,
    after: StreamPosition | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    weighted: bool = True,
    vote_limit: int | None = None,
) -> Iterator[Pair]:
    """Arena votes, then annotation rankings' pairs, filtered, in one fixed order.

    ``vote_limit`` (for a page of ``n``: ``n + 1``) stops the arena query early; the caller
    takes the first ``n`` pairs.
    """
    after = after or StreamPosition()
    if after.phase == 0:
        yield from iter_arena_pairs(
            filters, after_vote_id=after.pk, chunk_size=chunk_size, vote_limit=vote_limit
        )
    after_ranking = after.pk if after.phase == 1 else 0
    for ranking in iter_rankings(filters, after_pk=max(after_ranking - 1, 0)):
        for pair in expand_ranking(ranking, weighted=weighted):
            if after.phase == 1 and ranking.pk == after.pk and pair.sub_index <= after.sub:
                continue
            if pair_allowed(pair, filters):
                yield pair


def count_pairs_estimate(filters: PairFilters) -> int:
    """Arena pairs exactly plus annotation pairs (K(K-1)/2 each); used for progress only."""
    total = vote_queryset(filters).count() if SOURCE_ARENA in filters.sources else 0
    for ranking in iter_rankings(filters):
        k = len(ranking.responses)
        total += k * (k - 1) // 2
    return total


def snapshot_ids() -> tuple[int, int]:
    """(highest vote id, highest annotation ranking id) right now: what a release is cut from."""
    max_vote = Vote.objects.aggregate(m=Max("id"))["m"] or 0
    return max_vote, rankings.max_ranking_id()


# --- browse helpers (API) ----------------------------------------------------------------------


def battles_for_browse() -> QuerySet[Battle]:
    return (
        Battle.objects.filter(vote__isnull=False)
        .select_related("model_a", "model_b", "vote")
        .prefetch_related("turns__responses")
    )


def models_for_browse() -> QuerySet[LLM]:
    return LLM.objects.filter(active=True).order_by("slug")
