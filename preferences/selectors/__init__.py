"""Every human judgment read as preference pairs: one stream, no copy table.

``iter_pairs(filters)`` yields :class:`Pair` objects from arena votes (one pair per voted battle,
every turn kept) followed by annotation rankings (each ranking broken into its K(K-1)/2 pairs,
ties kept as ties). Rows come from a server-side cursor, so memory stays constant however many
votes there are. The pairs API and the exports read this one definition; the order is fixed
(arena by vote id, then rankings by id and pair index), which is what makes releases
reproducible.

Modules: ``pairs`` (the vocabulary: filters, pairs, rankings, expansion, the API's JSON),
``arena`` (the vote query and its rows), ``rankings`` (the seam to
``annotations.selectors.accepted_rankings``), ``stream`` (the one stream, counts, snapshot).
"""

from preferences.selectors.arena import (
    ARENA_COLUMNS,
    arena_turn_rows,
    iter_arena_pairs,
    json_list,
    stream_rows,
    vote_queryset,
)
from preferences.selectors.pairs import (
    DEFAULT_CHUNK,
    SOURCE_ANNOTATION,
    SOURCE_ARENA,
    SOURCE_CONSENSUS,
    SOURCES,
    WINNER_A,
    WINNER_B,
    WINNER_BOTH_BAD,
    WINNER_TIE,
    WINNERS,
    Pair,
    PairFilters,
    RankedResponse,
    Ranking,
    StreamPosition,
    expand_ranking,
    pair_to_json,
    position_of,
)
from preferences.selectors.rankings import (
    iter_rankings,
    pair_allowed,
    ranking_from_annotation,
    ranking_source,
)
from preferences.selectors.stream import (
    battles_for_browse,
    count_pairs_estimate,
    iter_pairs,
    models_for_browse,
    snapshot_ids,
)

__all__ = [
    "ARENA_COLUMNS",
    "DEFAULT_CHUNK",
    "SOURCES",
    "SOURCE_ANNOTATION",
    "SOURCE_ARENA",
    "SOURCE_CONSENSUS",
    "WINNERS",
    "WINNER_A",
    "WINNER_B",
    "WINNER_BOTH_BAD",
    "WINNER_TIE",
    "Pair",
    "PairFilters",
    "RankedResponse",
    "Ranking",
    "StreamPosition",
    "arena_turn_rows",
    "battles_for_browse",
    "count_pairs_estimate",
    "expand_ranking",
    "iter_arena_pairs",
    "iter_pairs",
    "iter_rankings",
    "json_list",
    "models_for_browse",
    "pair_allowed",
    "pair_to_json",
    "position_of",
    "ranking_from_annotation",
    "ranking_source",
    "snapshot_ids",
    "stream_rows",
    "vote_queryset",
]
