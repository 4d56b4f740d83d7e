"""Reads for the leaderboard, split by concern: ``snapshots`` (stored boards, category labels),
``counts`` (the vote counts, flagged votes, head-to-head records), ``votes`` (every vote as
engine-ready arrays, for the full recompute) and ``annotation_source`` (annotators' rankings
as weighted pairs)."""

from rating.selectors.annotation_source import annotation_pairs
from rating.selectors.counts import (
    CategoryCounts,
    battles_shown,
    category_counts,
    counts_by_category,
    counts_versions,
    excluded_by_category,
    excluded_summary,
    flagged_by_category,
    head_to_head,
)
from rating.selectors.snapshots import (
    CATEGORY_LABELS,
    LANGUAGE_NAMES,
    category_label,
    category_sort_key,
    snapshot_categories,
    snapshot_latest,
    snapshot_versions,
)
from rating.selectors.votes import OUTCOMES, VoteArrays, arena_vote_arrays

__all__ = [
    "CATEGORY_LABELS",
    "LANGUAGE_NAMES",
    "OUTCOMES",
    "CategoryCounts",
    "VoteArrays",
    "annotation_pairs",
    "arena_vote_arrays",
    "battles_shown",
    "category_counts",
    "category_label",
    "category_sort_key",
    "counts_by_category",
    "counts_versions",
    "excluded_by_category",
    "excluded_summary",
    "flagged_by_category",
    "head_to_head",
    "snapshot_categories",
    "snapshot_latest",
    "snapshot_versions",
]
