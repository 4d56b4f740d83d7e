"""PostgreSQL's binary COPY format, decoded: the one place that knows its layout.

Django-free (bytes in, bytes and numpy arrays out), so the rating selectors, the arena's counts
and the preference export share it and it can be tested alone. Layout
(https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): an 11-byte signature,
a 4-byte flags field and a 4-byte header-extension length (then the extension); each row is a
2-byte field count and, per field, a 4-byte length (-1 for NULL) and the bytes; the trailer is
a field count of -1. psycopg's ``Copy`` iterator yields one protocol message per row, the file
header arriving with the first row and the trailer alone.

Two ways to read rows: ``parse`` (a few rows of big fields, a Python loop per field) and, for
many rows, ``field_spans`` (where every field of a block of rows is, with numpy, one pass per
field over all rows) with ``piece_offsets`` / ``fixed_width`` to cut the values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER_BYTES = 19  # signature, flags, extension length (the extension itself follows)


class CopyFormatError(ValueError):
    """Bytes that are not PostgreSQL binary COPY output."""


def header_length(data: bytes | memoryview) -> int:
    """Bytes of the file header at the start of ``data``, its extension included."""
    if bytes(data[:11]) != SIGNATURE:
        raise CopyFormatError("not a binary COPY (no PGCOPY signature)")
    return HEADER_BYTES + int.from_bytes(data[15:19], "big")


def strip_header(message: Any) -> bytes:
    """The first message of a binary COPY without the file header that comes with it."""
    data = bytes(message)
    return data[header_length(data) :]


def row_messages(copy: Iterable[Any]) -> Iterator[bytes]:
    """Every row message of a COPY read message by message (psycopg's ``Copy``), the header cut
    from the first and the trailer dropped (read on to it, so that the COPY ends cleanly)."""
    first = True
    for message in copy:
        data = bytes(message)
        if first:
            first = False
            data = strip_header(data)
        if len(data) > 2:
            yield data


def single_fields(copy: Iterable[Any]) -> Iterator[bytes]:
    """The one field of every row of a COPY of one non-null column."""
    for data in row_messages(copy):
        yield data[6:]  # 2-byte field count, 4-byte length


def parse(data: bytes) -> list[list[bytes | None]]:
    """A whole binary COPY (header to trailer) as rows of raw field bytes (None for NULL).

    Meant for a FEW rows of big fields (``array_agg`` per group): a Python loop per field.
    """
    rows: list[list[bytes | None]] = []
    if not data:
        return rows
    mv = memoryview(data)
    pos = header_length(mv)
    while True:
        if pos + 2 > len(mv):
            raise CopyFormatError("binary COPY ends without its trailer")
        n = int.from_bytes(mv[pos : pos + 2], "big", signed=True)
        pos += 2
        if n == -1:
            return rows
        row: list[bytes | None] = []
        for _ in range(n):
            size = int.from_bytes(mv[pos : pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                row.append(None)
            else:
                if pos + size > len(mv):
                    raise CopyFormatError("binary COPY field runs past the end")
                row.append(bytes(mv[pos : pos + size]))
                pos += size
        rows.append(row)


_INT_WIDTHS = {21: ">i2", 23: ">i4", 20: ">i8"}  # int2, int4, int8 type oids


def int_array(field: bytes | None) -> np.ndarray:
    """A one-dimensional int2/int4/int8 array without NULLs in binary form, as int64."""
    if field is None:
        return np.zeros(0, dtype=np.int64)
    ndim = int.from_bytes(field[0:4], "big")
    if ndim == 0:
        return np.zeros(0, dtype=np.int64)
    if ndim != 1:
        raise CopyFormatError(f"expected a one-dimensional array, got {ndim} dimensions")
    oid = int.from_bytes(field[8:12], "big")
    size = int.from_bytes(field[12:16], "big")
    if oid not in _INT_WIDTHS:
        raise CopyFormatError(f"expected an integer array, got element type oid {oid}")
    dtype = np.dtype([("len", ">i4"), ("v", _INT_WIDTHS[oid])])
    return np.frombuffer(field, dtype=dtype, offset=20, count=size)["v"].astype(np.int64)


# --- whole blocks of rows at once (numpy, no per-row Python) --------------------------------------

POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in microseconds since 1970-01-01


def _at(data: bytes, starts: np.ndarray, dtype: str) -> np.ndarray:
    """The big-endian value of ``dtype`` at each byte offset (unaligned: a one-byte-stride view
    of the buffer, one gather)."""
    width = np.dtype(dtype).itemsize
    if len(starts) and (starts.min() < 0 or starts.max() + width > len(data)):
        raise CopyFormatError("a field runs past the end of the block")
    view = np.ndarray(
        shape=(max(len(data) - width + 1, 0),), dtype=dtype, buffer=data, strides=(1,)
    )
    return view[starts].astype(np.dtype(dtype).newbyteorder("="))


def field_spans(data: bytes, sizes: np.ndarray, fields: int) -> tuple[np.ndarray, np.ndarray]:
    """Where every field of a block of rows is: ``data`` is rows back to back (row messages, no
    file header or trailer), ``sizes`` each row's length, every row of ``fields`` fields.

    Returns (starts, lengths), each ``(rows, fields)``: the byte offset of each field's value in
    ``data`` and its length (-1 for NULL). One pass per field over all rows: a field's place
    follows from the lengths of the fields before it.
    """
    sizes = np.asarray(sizes, np.int64)
    row_starts = np.cumsum(sizes) - sizes
    if int(sizes.sum()) != len(data):
        raise CopyFormatError("row sizes do not add up to the block")
    if (_at(data, row_starts, ">i2") != fields).any():
        raise CopyFormatError(f"expected {fields} fields in every row")
    starts = np.empty((len(sizes), fields), np.int64)
    lengths = np.empty((len(sizes), fields), np.int64)
    pos = row_starts + 2
    for j in range(fields):
        size = _at(data, pos, ">i4").astype(np.int64)
        starts[:, j] = pos + 4
        lengths[:, j] = size
        pos = pos + 4 + np.maximum(size, 0)
    if (pos != row_starts + sizes).any():
        raise CopyFormatError("row layout: the fields do not fill their rows")
    return starts, lengths


def piece_offsets(starts: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    """Offsets cutting a block at every field's start and end (NULL fields: empty): piece
    ``2k + 1`` is field ``k`` of ``field_spans`` in row-major order, so one binary array over
    the block's bytes with these offsets holds every field, each column a ``take`` of it."""
    flat_starts = starts.ravel()
    ends = flat_starts + np.maximum(lengths.ravel(), 0)
    offsets = np.empty(2 * len(flat_starts) + 2, np.int64)
    offsets[0] = 0
    offsets[1:-1:2] = flat_starts
    offsets[2:-1:2] = ends
    offsets[-1] = total
    return offsets


def fixed_width(data: bytes, starts: np.ndarray, dtype: str) -> np.ndarray:
    """A fixed-width field (``>i2``, ``>i4``, ``>i8``, ``>f8``) at each start, in native order."""
    return _at(data, starts, dtype)
