"""JSON lines from an Arrow table whose strings are already JSON escapes, whole blocks at once.

Each line is what ``json.dumps(row, ensure_ascii=False, separators=(",", ":"),
allow_nan=False)`` writes for the row as ``Table.to_pylist`` gives it, and a newline: fields in
schema order; strings in quotes (escaped upstream, see :mod:`preferences.exports.columns`);
floats as ``repr`` writes them; integers, booleans and nulls as JSON has them; lists and
structs nested.

Nothing is concatenated level by level: a value's JSON is a :class:`_Pieces` (for every row, the
ids of the byte strings that make it: the values themselves, quotes, keys, commas), nested
values join their pieces with numpy index arithmetic, and the block's bytes are gathered once,
in order, by one Arrow ``take``. Every text is copied once, into the file's bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class _Pool:
    """The byte strings the pieces point at: arrays of values, and constants (each stored once)."""

    def __init__(self) -> None:
        self.arrays: list[pa.Array] = []
        self.size = 0
        self._constants: dict[str, int] = {}

    def add(self, values: pa.Array) -> np.ndarray:
        """Ids of the values' pieces."""
        ids = self.size + np.arange(len(values), dtype=np.int64)
        self.arrays.append(values.cast(pa.binary()) if pa.types.is_string(values.type) else values)
        self.size += len(values)
        return ids

    def constant(self, text: str) -> int:
        if text not in self._constants:
            self._constants[text] = int(self.add(pa.array([text], pa.string()))[0])
        return self._constants[text]

    def gather(self, ids: np.ndarray) -> pa.Array:
        taken = pa.chunked_array(self.arrays, pa.binary()).take(pa.array(ids))
        return taken.chunk(0) if taken.num_chunks == 1 else taken.combine_chunks()


@dataclass
class _Pieces:
    """For every row, ``counts[row]`` piece ids in ``ids`` (rows back to back); ``width`` when
    every row has that many (the common case: no lists inside)."""

    counts: np.ndarray
    ids: np.ndarray
    width: int | None = None

    @classmethod
    def single(cls, ids: np.ndarray) -> _Pieces:
        return cls(np.ones(len(ids), np.int64), ids, 1)

    def starts(self) -> np.ndarray:
        return np.cumsum(self.counts) - self.counts


def _rows_of(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every item grouped ``counts`` per row: its row and its index within the row."""
    rows = np.repeat(np.arange(len(counts)), counts)
    return rows, np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]


Part = _Pieces | pa.Array | str  # pieces, one value per row, or a constant's text
SHORT = 48  # bytes per value: shorter values are joined with their neighbours before the gather


def _short(part: Part) -> bool:
    return isinstance(part, str) or (
        isinstance(part, pa.Array) and part.nbytes <= SHORT * max(len(part), 1)
    )


def _merged(parts: list[Part], pool: _Pool) -> list[_Pieces | int]:
    """Each run of constants and short values as one piece per row (``","model_a":"`` and the
    model's name, say): fewer, longer pieces make the final gather cheaper. Long values (the
    texts) stay pieces of their own, copied only by the gather."""
    out: list[_Pieces | int] = []
    run: list[pa.Array | str] = []

    def flush() -> None:
        if not run:
            return
        if all(isinstance(item, str) for item in run):
            out.append(pool.constant("".join(run)))  # type: ignore[arg-type]
        else:
            items = [pa.scalar(i, pa.string()) if isinstance(i, str) else i for i in run]
            joined = items[0] if len(items) == 1 else pc.binary_join_element_wise(*items, "")
            out.append(_Pieces.single(pool.add(joined)))
        run.clear()

    for part in parts:
        if _short(part):
            run.append(part)  # type: ignore[arg-type]
            continue
        flush()
        out.append(_Pieces.single(pool.add(part)) if isinstance(part, pa.Array) else part)
    flush()
    return out


def _concat(all_parts: list[Part], n: int, pool: _Pool) -> _Pieces:
    """Row by row, the parts one after the other."""
    parts = _merged(all_parts, pool)
    widths = [1 if isinstance(p, int) else p.width for p in parts]
    if all(w is not None for w in widths):  # a matrix of ids, one row per row
        matrix = np.empty((n, sum(widths)), np.int64)  # type: ignore[arg-type]
        column = 0
        for part, width in zip(parts, widths, strict=True):
            matrix[:, column : column + width] = (
                part if isinstance(part, int) else part.ids.reshape(n, width)
            )
            column += width  # type: ignore[operator]
        return _Pieces(np.full(n, matrix.shape[1], np.int64), matrix.ravel(), matrix.shape[1])
    counts = np.zeros(n, np.int64)
    for part in parts:
        counts += 1 if isinstance(part, int) else part.counts
    out = _Pieces(counts, np.empty(int(counts.sum()), np.int64))
    at = out.starts()  # where each row's next part goes
    for part, width in zip(parts, widths, strict=True):
        if isinstance(part, int):
            out.ids[at] = part
        elif width is not None:
            out.ids[(at[:, None] + np.arange(width)).ravel()] = part.ids
        else:
            rows, index = _rows_of(part.counts)
            out.ids[at[rows] + index] = part.ids
        at = at + (1 if isinstance(part, int) else part.counts)
    return out


def _floats(values: pa.Array) -> pa.Array:
    """``repr(x)`` of each float. Arrow writes the same shortest round-trip digits, in fixed
    notation for 1e-6 <= |x| < 1e10 without ``.0`` on whole numbers (``1``); Python's ``repr``
    uses fixed notation for 1e-4 <= |x| < 1e16 with ``.0``. Values outside Arrow's common range
    with Python (tiny, or 1e10 and above: rare here) are written by ``repr`` itself."""
    numbers = values.to_numpy(zero_copy_only=False)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if not np.isfinite(numbers[valid]).all():
        raise ValueError("Out of range float values are not JSON compliant")
    numbers = np.where(valid, numbers, 0.0)
    text = pc.cast(values, pa.string())
    size = np.abs(numbers)
    whole = (numbers == np.trunc(numbers)) & (size < 1e10)
    if whole.all():
        text = pc.binary_join_element_wise(text, ".0", "")
    elif whole.any():
        text = pc.if_else(pa.array(whole), pc.binary_join_element_wise(text, ".0", ""), text)
    python = valid & (((size < 1e-4) & (numbers != 0)) | (size >= 1e10))
    if python.any():
        fixed = pa.array([repr(float(x)) for x in numbers[python]], pa.string())
        text = pc.replace_with_mask(text, pa.array(python), fixed)
    return text


def _scalars(values: pa.Array) -> pa.Array:
    """Numbers and booleans as their JSON text."""
    t = values.type
    if pa.types.is_floating(t):
        return _floats(values)
    if pa.types.is_integer(t):
        return pc.cast(values, pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(values, "true", "false")
    raise TypeError(f"no JSON for {t}")


def _list(values: pa.Array, pool: _Pool) -> _Pieces:
    """``[`` elements separated by ``,`` ``]`` per row."""
    offsets = values.offsets.to_numpy().astype(np.int64)
    offsets -= offsets[0]
    elements = _concat(_encode(values.flatten(), pool), int(offsets[-1]), pool)
    lengths = np.diff(offsets)
    element_rows, index = _rows_of(lengths)
    # per row: '[', then each element's pieces preceded by ',' (but the first), then ']'
    element_counts = elements.counts + (index > 0)
    counts = 2 + np.bincount(element_rows, weights=element_counts, minlength=len(lengths))
    counts = counts.astype(np.int64)
    out = _Pieces(counts, np.empty(int(counts.sum()), np.int64))
    starts = out.starts()
    out.ids[starts] = pool.constant("[")
    out.ids[starts + counts - 1] = pool.constant("]")
    before = np.cumsum(element_counts) - element_counts  # pieces of earlier elements
    row_before = np.append(before, element_counts.sum())[offsets[:-1]]  # rows may be empty
    element_at = starts[element_rows] + 1 + before - row_before[element_rows]
    comma = index > 0
    out.ids[element_at[comma]] = pool.constant(",")
    element_at = element_at + comma
    if elements.width is not None:
        out.ids[(element_at[:, None] + np.arange(elements.width)).ravel()] = elements.ids
    else:
        piece_element, piece_index = _rows_of(elements.counts)
        out.ids[element_at[piece_element] + piece_index] = elements.ids
    return out


def _struct(values: pa.Array, pool: _Pool) -> list[Part]:
    parts: list[Part] = []
    for i, (field, column) in enumerate(zip(values.type, values.flatten(), strict=True)):
        parts += [("{" if i == 0 else ",") + json.dumps(field.name) + ":", *_encode(column, pool)]
    return [*parts, "}"] if parts else ["{}"]


def _encode(values: pa.Array, pool: _Pool) -> list[Part]:
    """Each value's JSON as parts; nulls as ``null``."""
    t = values.type
    if pa.types.is_string(t):
        if values.null_count:  # the quotes only around the texts
            quoted = _concat(['"', pc.fill_null(values, ""), '"'], len(values), pool)
            return [_either(values.is_null(), pool.constant("null"), quoted)]
        return ['"', values, '"']
    if pa.types.is_list(t) or pa.types.is_struct(t):
        if values.null_count:
            raise ValueError("null lists or structs are not written")
        return [_list(values, pool)] if pa.types.is_list(t) else _struct(values, pool)
    return [pc.fill_null(_scalars(values), "null")]


def _either(mask: pa.Array, constant: int, pieces: _Pieces) -> _Pieces:
    """``constant`` alone on the rows under ``mask``, ``pieces`` elsewhere."""
    use = mask.to_numpy(zero_copy_only=False)
    rows, _ = _rows_of(pieces.counts)
    keep = ~use[rows]
    counts = np.where(use, 1, pieces.counts)
    out = _Pieces(counts, np.empty(int(counts.sum()), np.int64))
    starts = out.starts()
    out.ids[starts[use]] = constant
    out.ids[np.flatnonzero(np.repeat(~use, counts))] = pieces.ids[keep]
    return out


def lines(table: pa.Table) -> pa.Array:
    """The block's JSON lines, one binary value per piece: its data buffer is the file's bytes
    for these rows (``line_bytes``)."""
    pool = _Pool()
    columns = [table[name].combine_chunks() for name in table.column_names]
    rows = pa.StructArray.from_arrays(columns, names=table.column_names)
    pieces = _concat([*_struct(rows, pool), "\n"], table.num_rows, pool)
    return pool.gather(pieces.ids)


def line_bytes(encoded: pa.Array) -> memoryview:
    """The bytes of ``lines``' result, back to back (no copy)."""
    if not len(encoded):
        return memoryview(b"")
    _, offsets, data = encoded.buffers()
    bounds = np.frombuffer(offsets, np.int32, count=len(encoded) + 1, offset=4 * encoded.offset)
    return memoryview(data)[int(bounds[0]) : int(bounds[-1])]
