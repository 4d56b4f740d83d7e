"""The pair and ranking tables the formats read, built from any source, in blocks of rows.

``PAIRS`` has one row per pair (the fields of ``selectors.Pair``); ``RANKINGS`` one row per
ranking (``selectors.Ranking``; an arena vote is a ranking of two). Both carry ``key``: the
sha256 of the first (scrubbed, stripped) prompt, behind the split and the dedup. A block's
texts are final: scrubbed when the release scrubs, and JSON escapes for JSON lines
(:class:`~preferences.exports.columns.Texts`), every other string too.

Sources: Python objects (annotation rankings and their pairs; arena votes on SQLite come as
turn rows too), or arena turn rows (:func:`pairs_from_turns`): one row per (vote, turn) in vote
and turn order, as ``selectors.arena_turn_rows`` gives them, with each text either final (the
database keeps the scrub and the JSON escape of every text, see ``arena.models``) or raw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arena.pii import PHONE_HINT, scrub
from preferences.exports.columns import (
    NEEDS_ESCAPE,
    STRINGS,
    Texts,
    cat,
    constant,
    first,
    join,
    json_escape_text,
    make_lists,
)
from preferences.exports.options import ExportOptions
from preferences.selectors import (
    SOURCE_ARENA,
    WINNER_A,
    WINNER_B,
    WINNER_BOTH_BAD,
    Pair,
    Ranking,
)

UTC_MICROS = pa.timestamp("us", "UTC")
KEY = pa.binary(32)
PAIRS = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("prompts", STRINGS),
        ("response_a", STRINGS),
        ("response_b", STRINGS),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("margin", pa.float64()),
        ("weight", pa.float64()),
        ("judge", pa.string()),
        ("categories", STRINGS),
        ("language", pa.string()),
        ("created", UTC_MICROS),
        ("agreement", pa.float64()),
        ("trust", pa.float64()),
        ("flags", STRINGS),
        ("key", KEY),
    ]
)
RESPONSE = pa.struct([("text", pa.string()), ("model", pa.string()), ("labels", pa.string())])
RANKINGS = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("prompts", STRINGS),
        ("shared_answers", STRINGS),
        ("responses", pa.list_(RESPONSE)),
        ("ranks", pa.list_(pa.int64())),
        ("judge", pa.string()),
        ("trust", pa.float64()),
        ("agreement", pa.float64()),
        ("language", pa.string()),
        ("categories", STRINGS),
        ("flags", STRINGS),
        ("created", UTC_MICROS),
        ("key", KEY),
    ]
)
PAIR_TEXTS = ("prompts", "response_a", "response_b")
_PHONE_OR_MAIL = f"@|{PHONE_HINT}"


# --- texts, whole columns --------------------------------------------------------------------


def _fix_rows(values: pa.Array, mask: pa.Array, function: Callable[[str], str]) -> pa.Array:
    """``function`` on the rows under ``mask`` only (the few that need it), in Python."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return values
    fixed = pa.array([function(t) for t in values.filter(mask).to_pylist()], pa.string())
    return pc.replace_with_mask(values, mask, fixed)


def scrub_texts(values: pa.Array) -> pa.Array:
    """``arena.pii.scrub`` of every text: only texts with an '@' or the phone hint can change."""
    return _fix_rows(values, pc.match_substring_regex(values, _PHONE_OR_MAIL), scrub)


def escape_texts(values: pa.Array) -> pa.Array:
    """The JSON string escape of every text (most need none)."""
    return _fix_rows(values, pc.match_substring_regex(values, NEEDS_ESCAPE), json_escape_text)


def escape_strings(array: pa.Array) -> pa.Array:
    """Every string inside ``array`` (lists and structs too) as its JSON escape."""
    t = array.type
    if pa.types.is_string(t):
        return escape_texts(array)
    if pa.types.is_list(t):
        offsets = pc.subtract(array.offsets, array.offsets[0])
        return pa.ListArray.from_arrays(offsets, escape_strings(array.flatten()))
    if pa.types.is_struct(t):
        fields = [escape_strings(f) for f in array.flatten()]
        return pa.StructArray.from_arrays(fields, fields=list(t))
    return array


def keys_of(prompts: pa.Array) -> pa.Array:
    """``options.prompt_key`` of each (scrubbed, unescaped) prompt."""
    return pa.array([hashlib.sha256(p.strip().encode()).digest() for p in prompts.to_pylist()], KEY)


def string_list(value: Any) -> list[str]:
    """A stored category or flag list (JSON text or list) as strings: an element that is not a
    string is written as its JSON (``3`` -> ``"3"``), as the Parquet schema holds strings."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        return []
    return [v if isinstance(v, str) else json.dumps(v) for v in value]


def string_lists(values: pa.Array, tx: Texts) -> pa.Array:
    """A column of stored lists (JSON texts, few distinct) as a list column in ``tx``'s mode."""
    encoded = values.dictionary_encode()
    lists = pa.array([string_list(v) for v in encoded.dictionary.to_pylist()], STRINGS)
    return (escape_strings(lists) if tx.escaped else lists).take(encoded.indices)


def _few(values: pa.Array, tx: Texts) -> pa.Array:
    """A column of few distinct strings (model names, languages) in ``tx``'s mode."""
    if not tx.escaped:
        return values
    encoded = values.dictionary_encode()
    return escape_texts(encoded.dictionary).take(encoded.indices)


def _finish(table: pa.Table, texts: Sequence[str], options: ExportOptions, tx: Texts) -> pa.Table:
    """Scrub the texts of rows built from raw objects, key them, escape every string."""
    columns = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if name in texts and options.scrub_pii:
            column = _map_strings(column, scrub_texts)
        columns[name] = column
    columns["key"] = keys_of(first(columns["prompts"]))
    if tx.escaped:
        columns = {n: c if n == "key" else escape_strings(c) for n, c in columns.items()}
    return pa.table(columns)


def _map_strings(array: pa.Array, function: Callable[[pa.Array], pa.Array]) -> pa.Array:
    if pa.types.is_string(array.type):
        return function(array)
    if pa.types.is_list(array.type):
        offsets = pc.subtract(array.offsets, array.offsets[0])
        return pa.ListArray.from_arrays(offsets, _map_strings(array.flatten(), function))
    return array


# --- from Python objects ---------------------------------------------------------------------


def pairs_table(pairs: Sequence[Pair], options: ExportOptions, tx: Texts) -> pa.Table:
    raw = pa.table(
        {
            "id": pa.array([p.id for p in pairs], pa.string()),
            "source": pa.array([p.source for p in pairs], pa.string()),
            **{n: pa.array([getattr(p, n) for p in pairs], STRINGS) for n in PAIR_TEXTS},
            "model_a": pa.array([p.model_a for p in pairs], pa.string()),
            "model_b": pa.array([p.model_b for p in pairs], pa.string()),
            "winner": pa.array([p.winner for p in pairs], pa.string()),
            "margin": pa.array([p.margin for p in pairs], pa.float64()),
            "weight": pa.array([p.weight for p in pairs], pa.float64()),
            "judge": pa.array([p.judge for p in pairs], pa.string()),
            "categories": pa.array([string_list(p.categories) for p in pairs], STRINGS),
            "language": pa.array([p.language for p in pairs], pa.string()),
            "created": pa.array([p.created for p in pairs], UTC_MICROS),
            "agreement": pa.array([p.agreement for p in pairs], pa.float64()),
            "trust": pa.array([p.trust for p in pairs], pa.float64()),
            "flags": pa.array([string_list(p.flags) for p in pairs], STRINGS),
        }
    )
    return _finish(raw, PAIR_TEXTS, options, tx).select(PAIRS.names)


def rankings_table(rankings: Sequence[Ranking], options: ExportOptions, tx: Texts) -> pa.Table:
    responses = [
        [
            {
                "text": r.text,
                "model": r.model,
                "labels": json.dumps(r.labels, sort_keys=True, ensure_ascii=False),
            }
            for r in ranking.responses
        ]
        for ranking in rankings
    ]
    raw = pa.table(
        {
            "id": pa.array([r.public_id or f"{r.source}:{r.pk}" for r in rankings], pa.string()),
            "source": pa.array([r.source for r in rankings], pa.string()),
            "prompts": pa.array([r.prompts for r in rankings], STRINGS),
            "shared_answers": pa.array([r.shared_answers for r in rankings], STRINGS),
            "responses": pa.array(responses, pa.list_(RESPONSE)),
            "ranks": pa.array([r.ranks for r in rankings], pa.list_(pa.int64())),
            "judge": pa.array([r.judge for r in rankings], pa.string()),
            "trust": pa.array([r.trust for r in rankings], pa.float64()),
            "agreement": pa.array([r.agreement for r in rankings], pa.float64()),
            "language": pa.array([r.language for r in rankings], pa.string()),
            "categories": pa.array([string_list(r.categories) for r in rankings], STRINGS),
            "flags": pa.array([string_list(r.flags) for r in rankings], STRINGS),
            "created": pa.array([r.created for r in rankings], UTC_MICROS),
        }
    )
    if options.scrub_pii:
        text = pa.table({"r": raw["responses"]})["r"].combine_chunks()
        offsets = pc.subtract(text.offsets, text.offsets[0])
        fields = text.flatten().flatten()
        scrubbed = pa.StructArray.from_arrays(
            [scrub_texts(fields[0]), fields[1], fields[2]], fields=list(RESPONSE)
        )
        raw = raw.set_column(4, "responses", pa.ListArray.from_arrays(offsets, scrubbed))
    return _finish(raw, ("prompts", "shared_answers"), options, tx).select(RANKINGS.names)


# --- arena turn rows -------------------------------------------------------------------------

TURN_TEXTS = {"prompts": "prompt", "response_a": "text_a", "response_b": "text_b"}


def _final_texts(turns: pa.Table, column: str, options: ExportOptions, tx: Texts) -> pa.Array:
    """A text column in its final form: as the database stored it (``column``), else computed
    from the raw text (``column + '_raw'``; a missing response is '')."""
    n = turns.num_rows
    stored = turns[column].combine_chunks() if column in turns.column_names else None
    if stored is not None and stored.null_count == 0:
        return stored
    raw = pc.fill_null(turns[column + "_raw"].combine_chunks(), "")
    todo = pa.array(np.ones(n, bool)) if stored is None else stored.is_null()
    if options.scrub_pii:
        raw = _fix_rows(raw, pc.and_(todo, pc.match_substring_regex(raw, _PHONE_OR_MAIL)), scrub)
    if tx.escaped:
        raw = _fix_rows(
            raw, pc.and_(todo, pc.match_substring_regex(raw, NEEDS_ESCAPE)), json_escape_text
        )
    return raw if stored is None else pc.coalesce(stored, raw)


def _turn_keys(turns: pa.Table, starts: np.ndarray, options: ExportOptions) -> pa.Array:
    """Each vote's key: as stored for its first turn, else from its scrubbed first prompt."""
    take = pa.array(starts)
    stored = turns["key"].combine_chunks().take(take) if "key" in turns.column_names else None
    if stored is not None and stored.null_count == 0:
        return stored.cast(KEY)
    prompts = pc.fill_null(turns["prompt_raw"].combine_chunks().take(take), "")
    if options.scrub_pii:
        prompts = scrub_texts(prompts)
    computed = keys_of(prompts)
    return computed if stored is None else pc.coalesce(stored.cast(KEY), computed)


def vote_starts(vote_ids: np.ndarray) -> np.ndarray:
    """Offsets of each vote's turn rows (the rows are in vote order): one more than votes."""
    change = np.flatnonzero(vote_ids[1:] != vote_ids[:-1]) + 1
    return np.concatenate([[0], change, [len(vote_ids)]]).astype(np.int64)


def pairs_from_turns(turns: pa.Table, options: ExportOptions, tx: Texts) -> pa.Table:
    """One pair per vote from its turn rows (every vote's turns inside the block).

    Columns: vote_id, public_id, model_a, model_b, winner, voter, flags and categories (the
    stored JSON lists), language, created; per text (prompt, text_a, text_b) its final form
    where stored and ``<name>_raw`` where not; ``key`` where stored."""
    offsets = vote_starts(turns["vote_id"].to_numpy())
    starts = pa.array(offsets[:-1])
    n = len(offsets) - 1

    def vote(name: str) -> pa.Array:
        return turns[name].combine_chunks().take(starts)

    def strings(array: pa.Array) -> pa.Array:
        return escape_strings(array) if tx.escaped else array

    texts = {
        name: make_lists(offsets, _final_texts(turns, column, options, tx))
        for name, column in TURN_TEXTS.items()
    }
    winner = vote("winner")
    decisive = pc.is_in(winner, value_set=pa.array([WINNER_A, WINNER_B]))
    return pa.table(
        {
            "id": cat("arena:", vote("public_id")),  # a UUID's text has nothing to escape
            "source": constant(SOURCE_ARENA, n, pa.string()),
            **texts,
            "model_a": _few(pc.fill_null(vote("model_a"), ""), tx),
            "model_b": _few(pc.fill_null(vote("model_b"), ""), tx),
            "winner": winner,
            "margin": pc.if_else(decisive, 1.0, 0.0),
            "weight": constant(1.0, n, pa.float64()),
            "judge": strings(pc.utf8_slice_codeunits(vote("voter"), 0, 16)),
            "categories": string_lists(vote("categories"), tx),
            "language": _few(pc.fill_null(vote("language"), ""), tx),
            "created": vote("created").cast(UTC_MICROS),
            "agreement": pa.nulls(n, pa.float64()),
            "trust": pa.nulls(n, pa.float64()),
            "flags": string_lists(vote("flags"), tx),
            "key": _turn_keys(turns, offsets[:-1], options),
        },
        schema=PAIRS,
    )


def rankings_from_pairs(pairs: pa.Table, tx: Texts) -> pa.Table:
    """Arena votes as rankings of two: a win ranks 1 and 2, a tie or both-bad 1 and 1 (both-bad
    labelled ``{"both_bad": true}``); each side's answers joined by a blank line."""
    winner = pairs["winner"].combine_chunks()
    n = pairs.num_rows
    both_bad = pc.equal(winner, WINNER_BOTH_BAD)
    labels = pc.if_else(both_bad, tx.lit(json.dumps({"both_bad": True})), tx.lit(json.dumps({})))
    side_texts = [
        join(pairs[s].combine_chunks(), tx.lit("\n\n").as_py())
        for s in ("response_a", "response_b")
    ]
    models = [pairs["model_a"].combine_chunks(), pairs["model_b"].combine_chunks()]
    order = np.arange(2 * n).reshape(2, n).T.ravel()  # a then b, row by row
    responses = pa.StructArray.from_arrays(
        [
            pa.concat_arrays(side_texts).take(pa.array(order)),
            pa.concat_arrays(models).take(pa.array(order)),
            pa.concat_arrays([labels, labels]).take(pa.array(order)),
        ],
        fields=list(RESPONSE),
    )
    rank_a = pc.if_else(pc.equal(winner, WINNER_B), 2, 1).cast(pa.int64())
    rank_b = pc.if_else(pc.equal(winner, WINNER_A), 2, 1).cast(pa.int64())
    ranks = pa.concat_arrays([rank_a, rank_b]).take(pa.array(order))
    pairs_of_two = np.arange(0, 2 * n + 1, 2)
    return pa.table(
        {
            "id": pairs["id"],
            "source": pairs["source"],
            "prompts": pairs["prompts"],
            "shared_answers": make_lists(np.zeros(n + 1, np.int64), pa.array([], pa.string())),
            "responses": make_lists(pairs_of_two, responses),
            "ranks": make_lists(pairs_of_two, ranks),
            "judge": pairs["judge"],
            "trust": pairs["trust"],
            "agreement": pairs["agreement"],
            "language": pairs["language"],
            "categories": pairs["categories"],
            "flags": pairs["flags"],
            "created": pairs["created"],
            "key": pairs["key"],
        },
        schema=RANKINGS,
    )
