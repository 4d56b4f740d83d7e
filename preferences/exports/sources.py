"""A release's rows as blocks of the pair table (or the ranking table), from any database.

Arena votes come as turn rows (``selectors.arena_turn_rows``) turned into pairs by one columnar
function (:func:`~preferences.exports.tables.pairs_from_turns`): on PostgreSQL through a typed
binary COPY (:mod:`preferences.exports.postgres`), elsewhere from the cursor's rows. Annotation
rankings (and their pairs) come from the selectors as Python objects, a few thousand at a time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import pyarrow as pa

from preferences.exports import postgres
from preferences.exports.columns import Texts
from preferences.exports.formats import get_format
from preferences.exports.options import ExportOptions
from preferences.exports.tables import (
    UTC_MICROS,
    pairs_from_turns,
    pairs_table,
    rankings_from_pairs,
    rankings_table,
)
from preferences.selectors import (
    ARENA_COLUMNS,
    SOURCE_ARENA,
    PairFilters,
    arena_turn_rows,
    iter_pairs,
    iter_rankings,
    stream_rows,
)

OBJECTS_PER_BLOCK = 2000
TURN_ROWS_PER_BLOCK = 5000
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class SourceBlock:
    """Rows of the pair (or ranking) table; ``busy``: read while a COPY holds the connection."""

    table: pa.Table
    busy: bool = False


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def turn_blocks_from_rows(filters: PairFilters) -> Iterator[pa.Table]:
    """The turn rows of ``postgres.turn_blocks`` through the cursor (raw texts, nothing stored),
    for SQLite."""
    rows = stream_rows(arena_turn_rows(filters), TURN_ROWS_PER_BLOCK)
    blocks = (_turn_table(batch) for batch in _batched(rows, TURN_ROWS_PER_BLOCK))
    yield from postgres.whole_votes(blocks)


_TYPED = {"vote_id", "public_id", "flags", "categories", "created"}


def _turn_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    names = [*postgres.VOTE_COLUMNS, "prompt_raw", "text_a_raw", "text_b_raw"]
    assert len(names) == len(ARENA_COLUMNS)
    values = dict(zip(names, columns, strict=True))
    return pa.table(
        {
            **{n: pa.array(values[n], pa.string()) for n in names if n not in _TYPED},
            "vote_id": pa.array(values["vote_id"], pa.int64()),
            "public_id": pa.array([str(v) for v in values["public_id"]], pa.string()),
            "flags": pa.array([_json_text(v) for v in values["flags"]], pa.string()),
            "categories": pa.array([_json_text(v) for v in values["categories"]], pa.string()),
            "created": pa.array(values["created"], UTC_MICROS),
        }
    )


def source_blocks(filters: PairFilters, options: ExportOptions) -> Iterator[SourceBlock]:
    """Arena votes (if asked for), then annotation rows, in the stream's order; texts final
    (scrubbed as asked, JSON escapes for JSON lines)."""
    fmt = get_format(options.format)
    tx = Texts(escaped=options.json_lines)
    if not fmt.ties:  # the format's ties rule, applied by the queries: fewer rows read
        filters = dataclasses.replace(filters, include_ties=False, include_both_bad=False)
    if SOURCE_ARENA in filters.sources:
        arena = dataclasses.replace(filters, sources=(SOURCE_ARENA,))
        typed = postgres.available()
        turns = postgres.turn_blocks(arena, options) if typed else turn_blocks_from_rows(arena)
        for block in turns:
            pairs = pairs_from_turns(block, options, tx)
            yield SourceBlock(rankings_from_pairs(pairs, tx) if fmt.per_ranking else pairs, typed)
    others = tuple(s for s in filters.sources if s != SOURCE_ARENA)
    if not others:
        return
    annotations = dataclasses.replace(filters, sources=others)
    if fmt.per_ranking:
        for rankings in _batched(iter_rankings(annotations), OBJECTS_PER_BLOCK):
            yield SourceBlock(rankings_table(rankings, options, tx))
    else:
        for pairs in _batched(iter_pairs(annotations), OBJECTS_PER_BLOCK):
            yield SourceBlock(pairs_table(pairs, options, tx))
