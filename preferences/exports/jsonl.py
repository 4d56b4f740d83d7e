"""JSON lines from an Arrow table whose strings are already JSON escapes, whole columns at once.

Each line is what ``json.dumps(row, ensure_ascii=False, separators=(",", ":"),
allow_nan=False)`` writes for the row as ``Table.to_pylist`` gives it, and a newline: fields in
schema order; strings in quotes (escaped upstream, see :mod:`preferences.exports.columns`);
floats as ``repr`` writes them; integers, booleans and nulls as JSON has them; lists and
structs nested. The lines of a block are one Arrow string array whose data buffer is the bytes
of the file, so writing them is one copy.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from preferences.exports.columns import cat


def _floats(values: pa.Array) -> pa.Array:
    """``repr(x)`` of each float: Arrow's shortest round-trip digits, with ``.0`` on whole
    numbers; the exponent form below 1e-4 (``1e-05``) from Python itself (rare)."""
    numbers = values.to_numpy(zero_copy_only=False)
    finite = np.isfinite(numbers) | np.isnan(numbers) & ~values.is_valid().to_numpy(False)
    if not finite.all():
        raise ValueError("Out of range float values are not JSON compliant")
    text = pc.cast(values, pa.string())
    whole = pc.invert(pc.match_substring_regex(text, r"[.e]"))
    text = pc.if_else(pc.fill_null(whole, False), cat(text, ".0"), text)
    tiny = (np.abs(numbers) < 1e-4) & (numbers != 0)
    if tiny.any():
        rows = np.flatnonzero(tiny)
        fixed = pa.array([repr(float(numbers[i])) for i in rows], pa.string())
        text = pc.replace_with_mask(text, pa.array(tiny), fixed)
    return text


def _lists(values: pa.Array) -> pa.Array:
    offsets = pc.subtract(values.offsets, values.offsets[0])
    inner = pa.ListArray.from_arrays(offsets, encode(values.flatten()))
    return cat("[", pc.binary_join(inner, ","), "]")


def _struct(values: pa.Array) -> pa.Array:
    parts: list[pa.Array | str] = []
    for i, (field, column) in enumerate(zip(values.type, values.flatten(), strict=True)):
        parts += [("{" if i == 0 else ",") + json.dumps(field.name) + ":", encode(column)]
    return cat(*parts, "}") if parts else pa.repeat(pa.scalar("{}"), len(values))


def encode(values: pa.Array) -> pa.Array:
    """Each value as JSON text (strings taken as escaped); nulls as ``null``."""
    t = values.type
    if pa.types.is_string(t):
        out = cat('"', values, '"')
    elif pa.types.is_floating(t):
        out = _floats(values)
    elif pa.types.is_integer(t):
        out = pc.cast(values, pa.string())
    elif pa.types.is_boolean(t):
        out = pc.if_else(values, "true", "false")
    elif pa.types.is_list(t):
        out = _lists(values)
    elif pa.types.is_struct(t):
        out = _struct(values)
    else:
        raise TypeError(f"no JSON for {t}")
    return pc.fill_null(out, "null") if values.null_count else out


def lines(table: pa.Table) -> pa.Array:
    """One JSON object per row, each with its newline."""
    columns = [table[name].combine_chunks() for name in table.column_names]
    rows = pa.StructArray.from_arrays(columns, names=table.column_names)
    return cat(_struct(rows), "\n")


def line_bytes(encoded: pa.Array) -> memoryview:
    """The bytes of ``lines``' result: its rows back to back (no copy)."""
    if not len(encoded):
        return memoryview(b"")
    _, offsets, data = encoded.buffers()
    bounds = np.frombuffer(offsets, np.int32, count=len(encoded) + 1, offset=4 * encoded.offset)
    return memoryview(data)[int(bounds[0]) : int(bounds[-1])]
