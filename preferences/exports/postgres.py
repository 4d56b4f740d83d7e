"""Arena turn rows from PostgreSQL as Arrow tables: one binary COPY, decoded a block at a time.

Fetching rows into Python tuples is slower than the export budget allows, so on PostgreSQL the
selector's (vote, turn) query (``selectors.arena_turn_rows``, the rows the pairs API reads) runs
as ``COPY (...) TO STDOUT (FORMAT binary)``: PostgreSQL sends typed fields with their byte
lengths and :mod:`core.pgcopy` finds every field of a block of rows with numpy, so that each
column is one Arrow ``take`` of the block's bytes, with no per-row Python.

Each text comes in its final form where the database keeps it (``arena.models``: the PII scrub
and the JSON escape of every prompt and response, and the prompt key, maintained on every
write): ``final`` is the stored value (the text itself where the stored one is ``''``), NULL
where it is not stored, and then ``raw`` is the text, scrubbed and escaped in Python
(:func:`preferences.exports.tables.pairs_from_turns`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from django.db import connection

from core import pgcopy
from preferences.exports.options import ExportOptions
from preferences.selectors import ARENA_COLUMNS, PairFilters, arena_turn_rows

WORK_MEM = "64MB"
# Rows decoded at once (int32 offsets: far below 2 GiB). A Parquet release holds a block's copies
# next to its row groups in flight, so its blocks are smaller (peak RSS); JSON lines pay a fixed
# cost per block (~300 Arrow calls), so theirs are larger. Measured in bench/export.py.
BLOCK_BYTES = {
    "json": 1 << 20,
    "parquet": 1 << 20,
}  # peak RSS: 4 MB JSON blocks took a 1M-row export to 343 MB, 1 MB to 291 MB at the same speed
# The names of the selector's ARENA_COLUMNS here (the vote's, then the three texts').
VOTE_COLUMNS = [
    *("vote_id", "public_id", "model_a", "model_b", "winner", "voter", "flags", "categories"),
    *("language", "created"),
]
TEXT_COLUMNS = {"prompt": "prompt", "ra__text": "text_a", "rb__text": "text_b"}
_CASTS = {"public_id": "::text", "flags": "::text", "categories": "::text"}


def available() -> bool:
    return connection.vendor == "postgresql"


def _columns(options: ExportOptions) -> tuple[list[str], list[str]]:
    """(the base query's extra columns, the SELECT list over them as ``b.<column>``)."""
    stored = ("json" if options.json_lines else "scrubbed") if options.scrub_pii else None
    extra = ["index"]
    select = [f"b.{name}{_CASTS.get(name, '')}" for name in VOTE_COLUMNS]
    for text in TEXT_COLUMNS:
        if stored is None:
            select.append(f"b.{text.replace('__', '_')}")
            continue
        extra.append(f"{text}_{stored}")
        s = f"b.{text.replace('__', '_')}_{stored}"
        x = f"b.{text.replace('__', '_')}"
        late_key = " OR b.prompt_key IS NULL" if text == "prompt" else ""
        select += [
            f"CASE WHEN {s} = '' THEN {x} ELSE {s} END",
            f"CASE WHEN {s} IS NULL{late_key} THEN {x} END",
        ]
    if stored is not None:
        extra.append("prompt_key")
        select.append("b.prompt_key")
    return extra, select


def turn_rows_sql(filters: PairFilters, options: ExportOptions) -> str:
    """The selector's turn rows, in vote and turn order, as the typed fields ``decode`` reads.
    Complete SQL (COPY takes no parameters)."""
    extra, select = _columns(options)
    names = [*VOTE_COLUMNS, "prompt", "ra_text", "rb_text", *(e.replace("__", "_") for e in extra)]
    sql, params = (
        arena_turn_rows(filters).values_list(*ARENA_COLUMNS, *extra).query.sql_with_params()
    )
    connection.ensure_connection()
    with psycopg.ClientCursor(connection.connection) as cur:
        base = cur.mogrify(sql, params)
    return (
        f"SELECT {', '.join(select)} FROM ({base}) AS b({', '.join(names)})\n"
        "ORDER BY b.vote_id, b.index"
    )


def _names(options: ExportOptions) -> list[str]:
    out = list(VOTE_COLUMNS)
    for name in TEXT_COLUMNS.values():
        out += [name, name + "_raw"] if options.scrub_pii else [name + "_raw"]
    return out + (["key"] if options.scrub_pii else [])


_FIXED = {"vote_id": ">i8", "created": ">i8"}


def decode(data: bytes, sizes: np.ndarray, names: list[str]) -> pa.Table:
    """A block of COPY rows (``data``: rows back to back, ``sizes``: each row's length) as a
    table of ``names`` (texts, the key as bytes, vote ids, creation times)."""
    starts, lengths = pgcopy.field_spans(data, sizes, len(names))
    offsets = pgcopy.piece_offsets(starts, lengths, len(data))
    pieces = pa.Array.from_buffers(
        pa.binary(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
    )
    rows, fields = starts.shape
    columns: dict[str, pa.Array] = {}
    for j, name in enumerate(names):
        if name in _FIXED:
            values = pgcopy.fixed_width(data, starts[:, j], _FIXED[name])
            if name == "created":
                columns[name] = pa.array(
                    values + pgcopy.POSTGRES_EPOCH_US, pa.timestamp("us", "UTC")
                )
            else:
                columns[name] = pa.array(values)
            continue
        at = 2 * (np.arange(rows) * fields + j) + 1
        taken = pieces.take(pa.array(at, mask=lengths[:, j] < 0))
        columns[name] = taken if name == "key" else taken.view(pa.string())
    return pa.table(columns)


@contextlib.contextmanager
def _copy_out(sql: str) -> Iterator[Any]:
    """``COPY (sql) TO STDOUT`` in binary; its messages, one per row."""
    with connection.cursor() as cursor:
        cur = cursor.cursor  # the psycopg cursor under Django's wrapper
        if connection.in_atomic_block:  # a worker's read transaction (see services)
            # hash joins and sorts in memory, no JIT compile (it costs more than it saves)
            cur.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cur.execute("SET LOCAL jit = off")
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            yield copy


def _blocks(messages: Iterable[bytes], names: list[str], limit: int) -> Iterator[pa.Table]:
    rows: list[bytes] = []
    size = 0
    for message in messages:
        rows.append(message)
        size += len(message)
        if size >= limit:
            yield decode(b"".join(rows), np.fromiter(map(len, rows), np.int64), names)
            rows, size = [], 0
    if rows:
        yield decode(b"".join(rows), np.fromiter(map(len, rows), np.int64), names)


def whole_votes(blocks: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Blocks of turn rows cut between votes: the last vote of a block waits for the next."""
    carry: pa.Table | None = None
    for block in blocks:
        if carry is not None:
            block = pa.concat_tables([carry, block])
        ids = block["vote_id"].to_numpy()
        last_start = int(np.searchsorted(ids, ids[-1])) if len(ids) else 0
        carry = block.slice(last_start)
        if last_start:
            yield block.slice(0, last_start)
    if carry is not None and carry.num_rows:
        yield carry


def turn_blocks(filters: PairFilters, options: ExportOptions) -> Iterator[pa.Table]:
    """The arena turn rows of a release, in blocks of whole votes. While it runs, the COPY holds
    the connection: nothing else can run on it."""
    names = _names(options)
    with _copy_out(turn_rows_sql(filters, options)) as copy:
        limit = BLOCK_BYTES["json" if options.json_lines else "parquet"]
        yield from whole_votes(_blocks(pgcopy.row_messages(copy), names, limit))
