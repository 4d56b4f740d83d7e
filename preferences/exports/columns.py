"""Arrow building blocks for the export formats: texts, lists and messages over whole columns.

A format is written once against these helpers and runs on a block of rows at a time, whatever
database the rows came from and whatever file they go to. Texts are in one of two modes
(:class:`Texts`): as they are (for Parquet), or as their JSON string escapes (for JSON lines,
where :mod:`preferences.exports.jsonl` only puts the quotes around them). A format joins texts
and constants, so it is the same code in both modes as long as its constants come from
``Texts.lit`` (the escape of a concatenation is the concatenation of the escapes).

Lists are handled through their offsets and flat values (numpy), never row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
STRINGS = pa.list_(pa.string())
# What json.dumps escapes in a string (ensure_ascii=False): controls, the quote, the backslash.
NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def json_escape_text(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)`` without its quotes."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


@dataclass(frozen=True)
class Texts:
    """The mode of a block's texts: ``escaped`` (JSON string escapes) or as they are."""

    escaped: bool

    def lit(self, text: str) -> pa.Scalar:
        """A constant text in this mode."""
        return pa.scalar(json_escape_text(text) if self.escaped else text, pa.string())


def cat(*parts: pa.Array | pa.Scalar) -> pa.Array:
    """Element-wise concatenation of texts (arrays of one length, or constants)."""
    return pc.binary_join_element_wise(*parts, "")


def constant(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def map_values(values: pa.Array, mapping: dict[str, pa.Scalar]) -> pa.Array:
    """Each value replaced by ``mapping[value]`` (null where it has none)."""
    keys = list(mapping)
    index = pc.index_in(values, value_set=pa.array(keys, values.type))
    return pa.array([mapping[k].as_py() for k in keys], pa.string()).take(index)


# --- lists -----------------------------------------------------------------------------------


def flat(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """A list array's offsets (from 0) and its values (the rows' elements back to back)."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.slice(offsets[0], offsets[-1] - offsets[0])
    return offsets - offsets[0], values


def make_lists(offsets: np.ndarray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def rows_of(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every element: its row and its index within the row."""
    counts = np.diff(offsets)
    rows = np.repeat(np.arange(len(counts)), counts)
    return rows, np.arange(offsets[-1]) - offsets[:-1][rows]


def lengths(lists: pa.Array) -> np.ndarray:
    return np.diff(flat(lists)[0])


def first(lists: pa.Array) -> pa.Array:
    """Each row's first element (rows are never empty)."""
    offsets, values = flat(lists)
    return values.take(pa.array(offsets[:-1]))


def last(lists: pa.Array) -> pa.Array:
    offsets, values = flat(lists)
    return values.take(pa.array(offsets[1:] - 1))


def drop_first(lists: pa.Array) -> pa.Array:
    """Each row without its first element."""
    offsets, values = flat(lists)
    keep = np.ones(offsets[-1], bool)
    keep[offsets[:-1]] = False
    return make_lists(offsets - np.arange(len(offsets)), values.filter(pa.array(keep)))


def drop_last(lists: pa.Array) -> pa.Array:
    offsets, values = flat(lists)
    keep = np.ones(offsets[-1], bool)
    keep[offsets[1:] - 1] = False
    return make_lists(offsets - np.arange(len(offsets)), values.filter(pa.array(keep)))


def singletons(values: pa.Array) -> pa.Array:
    """Each value as a list of one."""
    return make_lists(np.arange(len(values) + 1), values)


def join(lists: pa.Array, separator: str) -> pa.Array:
    """Each row's texts joined with ``separator`` (already in the texts' mode)."""
    return pc.binary_join(lists, separator)


def per_turn(prompts: pa.Array, answers: pa.Array, piece: Any) -> pa.Array:
    """``piece(prompt, answer, turn index)`` for every turn, as lists per row: the two lists of
    a row have one length (one answer per prompt)."""
    offsets, p = flat(prompts)
    answer_offsets, a = flat(answers)
    if not np.array_equal(offsets, answer_offsets):
        raise ValueError("a row has not one answer per prompt")
    _, index = rows_of(offsets)
    return make_lists(offsets, piece(p, a, index))


# --- messages --------------------------------------------------------------------------------


def messages(roles: pa.Array, contents: pa.Array) -> pa.Array:
    return pa.StructArray.from_arrays([roles, contents], fields=list(MESSAGE))


def role_messages(contents: pa.Array, role: str, tx: Texts) -> pa.Array:
    return messages(pa.repeat(tx.lit(role), len(contents)), contents)


def interleave(prompts: pa.Array, answers: pa.Array, tx: Texts) -> pa.Array:
    """Per row: user(prompt 1), assistant(answer 1), user(prompt 2), ... while answers last,
    then the remaining prompts as user messages (a row has at most one answer per prompt).

    With one answer per prompt this is the conversation; with none, the prompts alone."""
    p_offsets, p = flat(prompts)
    a_offsets, a = flat(answers)
    k, s = np.diff(p_offsets), np.diff(a_offsets)
    if (s > k).any():
        raise ValueError("more answers than prompts")
    out_offsets = p_offsets + a_offsets
    p_rows, i = rows_of(p_offsets)
    a_rows, j = rows_of(a_offsets)
    order = np.empty(out_offsets[-1], np.int64)
    is_user = np.zeros(out_offsets[-1], np.int8)
    user_at = out_offsets[:-1][p_rows] + i + np.minimum(i, s[p_rows])
    order[user_at] = np.arange(len(p))
    is_user[user_at] = 1
    order[out_offsets[:-1][a_rows] + 2 * j + 1] = len(p) + np.arange(len(a))
    contents = pa.concat_arrays([p, a]).take(pa.array(order))
    roles = pa.array([tx.lit("assistant").as_py(), tx.lit("user").as_py()]).take(pa.array(is_user))
    return make_lists(out_offsets, messages(roles, contents))
