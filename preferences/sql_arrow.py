"""Parquet straight from PostgreSQL's binary COPY: Arrow columns from buffers, no JSON in between.

The JSON-lines path (:mod:`preferences.sql_export`) makes PostgreSQL write each row as JSON and
``pyarrow.json`` parse it back: that parse is the largest part of a Parquet export's CPU. Here a
row is a few typed fields whose byte layout is fixed by the COPY binary format, so whole blocks of
rows become Arrow arrays with vectorised offset arithmetic (numpy) and one ``take`` per column:

    split int2 | tstamp float8 | lengths int4[] | qid | model_a | model_b | winner | judge |
    language | category_tag | flags | prompts | answers a | answers b

``lengths`` holds the byte length of every text field that follows, the three turn fields split
into their turns (a vote of n turns sends its n prompts as one field, then n answers per side).
With those lengths the position of every piece of every row in the block follows from sums, and
the block's bytes, cut at those positions, are one Arrow binary array ("pieces") whose elements
are the texts with the framing bytes between them; each column is a ``take`` of its pieces.

It covers the ``arena_battles`` format (the Chatbot Arena rows, the export researchers fetch in
bulk) when every category and flag list is a list of strings; anything else goes through the
JSON-lines path. The rows, their order, split and dedup are those of the JSON-lines query (the
same SQL building blocks), and the Arrow table is the one ``pyarrow.json`` would build, so the
Parquet file is byte-identical (tests/preferences/test_sql_export.py compares them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from core import pgcopy
from preferences import sql_export as sx
from preferences.exports import ExportOptions
from preferences.formats import MESSAGE, MESSAGES, get_format
from preferences.selectors import PairFilters

FORMATS = ("arena_battles",)
FIXED_TEXTS = 8  # qid .. flags: the text fields before the three turn fields
BLOCK_BYTES = 2 << 20  # a block of rows decoded at once (int32 offsets: far below 2 GiB)
_ROLES = pa.array(["user", "assistant"])
_WINNER = (
    "CASE {w} WHEN 'a' THEN 'model_a' WHEN 'b' THEN 'model_b' "
    "WHEN 'tie' THEN 'tie' WHEN 'both_bad' THEN 'tie (bothbad)' END"
)


def supported(options: ExportOptions) -> bool:
    """Whether the release's format and file format have typed columns here (the caller also
    needs every category and flag list to be a list of strings)."""
    return options.file_format == "parquet" and options.format in FORMATS


# --- SQL -------------------------------------------------------------------------------------


def _fields(v: dict[str, str], turns: str, turn_lengths: str) -> str:
    """The row's fields over one vote's expressions ``v`` (see the module doc for the layout)."""
    texts = [
        f"'arena:' || {v['public_id']}::text",
        f"coalesce({v['model_a']}, '')",
        f"coalesce({v['model_b']}, '')",
        _WINNER.format(w=v["winner"]),
        f"left(coalesce({v['voter']}, ''), 16)",
        f"coalesce({v['lang']}, '')",
        f"coalesce({v['cats']}::text, '[]')",
        f"coalesce({v['flags']}::text, '[]')",
    ]
    lengths = f"ARRAY[{', '.join(f'octet_length({t})' for t in texts)}]::int4[] || {turn_lengths}"
    return ", ".join(
        [
            f"{v['split']}::int2",
            f"extract(epoch FROM {v['created']})::float8",
            lengths,
            *texts,
            turns,
        ]
    )


def _flat_columns(filters: PairFilters, options: ExportOptions, split: str) -> str:
    """One-turn votes from the flat parallel join, as ``sql_export._flat_sql``."""
    ties = "" if get_format(options.format).ties else "AND b.winner IN ('a', 'b')"
    scrub = sx._scrubber(options)
    key = sx._prompt_key(scrub("b.prompt", "b.sp"))
    if options.scrub_pii:
        key = f"coalesce(b.pk, {key})"
    v = {c: f"v.{c}" for c in sx._VOTE_COLUMNS.split(", ")} | {"split": split}
    turns = "v.p, v.a, v.bb"
    turn_lengths = "ARRAY[octet_length(v.p), octet_length(v.a), octet_length(v.bb)]::int4[]"
    return f"""SELECT {_fields(v, turns, turn_lengths)}, v.vote_id FROM (
    SELECT {", ".join(f"b.{c}" for c in sx._VOTE_COLUMNS.split(", "))},
           {scrub("b.prompt", "b.sp")} AS p, {scrub("coalesce(b.ta, '')", "b.sa")} AS a,
           {scrub("coalesce(b.tb, '')", "b.sb")} AS bb, {key} AS h
    FROM ({sx._base_sql(filters, several=False)}) AS b({sx._BASE_COLUMNS}{sx._STORED})
    WHERE TRUE {ties}
) AS v
ORDER BY v.vote_id
OFFSET 0"""


def _vote_fields(split: str) -> str:
    """The fields over ``sql_export._votes_sql``'s ``v`` (turn arrays for several turns)."""
    v = {c: f"v.{c}" for c in sx._VOTE_COLUMNS.split(", ")} | {"split": split}

    def joined(one: str, many: str) -> str:
        return f"CASE WHEN v.n = 1 THEN {one} ELSE array_to_string({many}, '') END"

    turns = f"{joined('v.p1', 'v.ps')}, {joined('v.a1', 'v.xa')}, {joined('v.b1', 'v.xb')}"
    turn_lengths = (
        "CASE WHEN v.n = 1 THEN ARRAY[octet_length(v.p1), octet_length(v.a1), "
        "octet_length(v.b1)]::int4[] ELSE (SELECT array_agg(octet_length(u.x) ORDER BY u.o) "
        "FROM unnest(v.ps || v.xa || v.xb) WITH ORDINALITY AS u(x, o))::int4[] END"
    )
    return _fields(v, turns, turn_lengths)


def arena_columns_sql(filters: PairFilters, options: ExportOptions) -> str:
    """The rows of ``sql_export.arena_lines_sql`` (same votes, order, split and dedup) as the
    typed fields of the module doc. Complete SQL, no parameters."""
    split = sx.split_expression(options)
    if options.dedup_prompts:
        return (
            sx._votes_sql(filters, options)
            + f"\nSELECT {_vote_fields(split)} FROM v {sx.dedup_where()} ORDER BY v.vote_id"
        )
    several = (
        sx._votes_sql(filters, options, several=True)
        + f"\nSELECT {_vote_fields(split)}, v.vote_id FROM v ORDER BY v.vote_id OFFSET 0"
    )
    names = ", ".join(f"c{i}" for i in range(FIXED_TEXTS + 6))
    return (
        f"SELECT {names} FROM (({_flat_columns(filters, options, split)})\nUNION ALL\n"
        f"({several})) AS u({names}, vote_id)\nORDER BY u.vote_id"
    )


# --- decoding --------------------------------------------------------------------------------

_HEADER = 48  # field count, split, tstamp, the lengths array's header: bytes before its values


class LayoutError(RuntimeError):
    """The COPY rows are not laid out as ``arena_columns_sql`` writes them (a NULL field, say):
    the release fails rather than write misaligned columns."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise LayoutError(f"typed COPY rows: unexpected {what}")


def _gather(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each position, one row per position."""
    return buf[at[:, None] + np.arange(width)]


def _within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items grouped ``counts`` per row: each item's row and its index within the row."""
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return rows, np.arange(total) - starts[rows]


def _texts(pieces: pa.Array, at: np.ndarray) -> pa.Array:
    return pieces.take(pa.array(at)).view(pa.string())


def _lists(texts: pa.Array) -> pa.Array:
    """JSON lists of strings (category tags, flags: few distinct values) as a list array."""
    encoded = texts.dictionary_encode()
    values = [json.loads(t) for t in encoded.dictionary.to_pylist()]
    return pa.array(values, type=pa.list_(pa.string())).take(encoded.indices)


def _conversation(
    pieces: pa.Array, prompts: np.ndarray, answers: np.ndarray, list_offsets: pa.Array
) -> pa.Array:
    content = _texts(pieces, np.column_stack([prompts, answers]).ravel())
    roles = _ROLES.take(pa.array(np.tile(np.array([0, 1], np.int8), len(prompts))))
    messages = pa.StructArray.from_arrays([roles, content], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(list_offsets, messages, type=MESSAGES)


def decode_block(data: bytes, sizes: np.ndarray, schema: pa.Schema) -> list[pa.RecordBatch]:
    """The rows of one block of COPY rows, one batch per split (0 train, 1 test): ``data`` the
    rows' bytes back to back, ``sizes`` each row's length."""
    buf = np.frombuffer(data, np.uint8)
    starts = np.cumsum(sizes) - sizes
    _check(len(data) < 2**31, "a block of 2 GiB or more")
    _check((_gather(buf, starts, 2).view(">i2")[:, 0] == FIXED_TEXTS + 6).all(), "field count")
    split = _gather(buf, starts + 6, 2).view(">i2")[:, 0]
    tstamp = _gather(buf, starts + 12, 8).view(">f8")[:, 0].astype(np.float64)
    m = _gather(buf, starts + 36, 4).view(">i4")[:, 0].astype(np.int64)
    turns = (m - FIXED_TEXTS) // 3
    _check(((m - FIXED_TEXTS) % 3 == 0).all() and (turns >= 1).all(), "turn lengths")
    # The lengths' values: element k of a row's array at start + 48 + 8k (its 4-byte length
    # before it); all rows' lengths back to back, row r's from lbase[r].
    row_of, k = _within(m)
    lengths = _gather(buf, starts[row_of] + _HEADER + 8 * k, 4).view(">i4")[:, 0].astype(np.int64)
    lbase = np.cumsum(m) - m
    # The pieces of row r: [framing up to the first text], then 8 x [text, 4-byte length of the
    # next field], then the prompts, [4], answers a, [4], answers b.
    counts = 19 + 3 * turns
    pbase = np.cumsum(counts) - counts
    piece_sizes = np.full(int(counts.sum()), 4, np.int64)
    piece_sizes[pbase] = _HEADER + 8 * m
    for j in range(FIXED_TEXTS):
        piece_sizes[pbase + 1 + 2 * j] = lengths[lbase + j]
    turn_row, t = _within(turns)
    base, first, n = pbase[turn_row], lbase[turn_row] + FIXED_TEXTS, turns[turn_row]
    turn_at = {"p": base + 17 + t, "a": base + 18 + n + t, "b": base + 19 + 2 * n + t}
    piece_sizes[turn_at["p"]] = lengths[first + t]
    piece_sizes[turn_at["a"]] = lengths[first + n + t]
    piece_sizes[turn_at["b"]] = lengths[first + 2 * n + t]
    offsets = np.zeros(len(piece_sizes) + 1, np.int64)
    np.cumsum(piece_sizes, out=offsets[1:])
    # Every row ends where the next begins: the layout is read as PostgreSQL wrote it.
    _check(offsets[-1] == len(data) and (offsets[pbase] == starts).all(), "row layout")
    pieces = pa.Array.from_buffers(
        pa.binary(),
        len(piece_sizes),
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
    )
    out = []
    for index in range(2):  # each split's rows taken straight from the pieces: one copy
        rows = split == index
        in_split = rows[turn_row]
        at = {side: positions[in_split] for side, positions in turn_at.items()}
        count = int(rows.sum())
        fixed = [_texts(pieces, pbase[rows] + 1 + 2 * j) for j in range(FIXED_TEXTS)]
        qid, model_a, model_b, winner, judge, language, cats, flags = fixed
        list_offsets = pa.array(np.concatenate([[0], np.cumsum(2 * turns[rows])]).astype(np.int32))
        columns = {
            "question_id": qid,
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "judge": judge,
            "conversation_a": _conversation(pieces, at["p"], at["a"], list_offsets),
            "conversation_b": _conversation(pieces, at["p"], at["b"], list_offsets),
            "turn": pa.array(turns[rows]),
            "anony": pa.array(np.ones(count, np.bool_)),
            "language": language,
            "tstamp": pa.array(tstamp[rows]),
            "source": pa.repeat(pa.scalar("arena"), count),
            "category_tag": _lists(cats),
            "flags": _lists(flags),
            "weight": pa.array(np.ones(count, np.float64)),
        }
        out.append(pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema))
    return out


def blocks(copy: Iterable[Any], schema: pa.Schema) -> Iterator[list[pa.RecordBatch]]:
    """Decoded blocks of a binary COPY of ``arena_columns_sql``: one COPY message per row, the
    file header with the first, the trailer (field count -1) alone."""
    rows: list[bytes] = []
    size = 0
    for message in pgcopy.row_messages(copy):
        rows.append(message)
        size += len(message)
        if size >= BLOCK_BYTES:
            yield decode_block(b"".join(rows), np.fromiter(map(len, rows), np.int64), schema)
            rows, size = [], 0
    if rows:
        yield decode_block(b"".join(rows), np.fromiter(map(len, rows), np.int64), schema)
