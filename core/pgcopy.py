"""PostgreSQL's binary COPY format, decoded: the one place that knows its layout.

Django-free (bytes in, bytes and numpy arrays out), so the rating selectors, the arena's counts
and the preference export share it and it can be tested alone. Layout
(https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): an 11-byte signature,
a 4-byte flags field and a 4-byte header-extension length (then the extension); each row is a
2-byte field count and, per field, a 4-byte length (-1 for NULL) and the bytes; the trailer is
a field count of -1. psycopg's ``Copy`` iterator yields one protocol message per row, the file
header arriving with the first row and the trailer alone.
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
