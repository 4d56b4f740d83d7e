"""The binary COPY decoder on bytes laid out by hand, and on PostgreSQL's own output."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from core import pgcopy


def _copy(rows: list[list[bytes | None]]) -> bytes:
    out = pgcopy.SIGNATURE + struct.pack(">ii", 0, 4) + b"ext!"
    for row in rows:
        out += struct.pack(">h", len(row))
        for field in row:
            out += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field
    return out + struct.pack(">h", -1)


def _int4_array(values: list[int]) -> bytes:
    head = struct.pack(">iiiii", 1, 0, 23, len(values), 1)
    return head + b"".join(struct.pack(">ii", 4, v) for v in values)


def test_parse_reads_rows_nulls_and_the_header_extension():
    data = _copy([[b"a", None, b""], [b"xyz", b"1", b"2"]])
    assert pgcopy.parse(data) == [[b"a", None, b""], [b"xyz", b"1", b"2"]]
    assert pgcopy.parse(b"") == []


def test_parse_refuses_what_is_not_a_complete_binary_copy():
    with pytest.raises(pgcopy.CopyFormatError, match="signature"):
        pgcopy.parse(b"id,name\n1,a\n")
    with pytest.raises(pgcopy.CopyFormatError, match="trailer"):
        pgcopy.parse(_copy([[b"a"]])[:-2])
    with pytest.raises(pgcopy.CopyFormatError, match="past the end"):
        pgcopy.parse(_copy([[b"abc"]])[:-4])


def test_row_messages_strip_the_header_and_drop_the_trailer():
    whole = _copy([[b"one"], [b"two"]])
    header = 19 + 4
    first_row = whole[: header + 2 + 4 + 3]
    second_row = whole[len(first_row) : len(first_row) + 9]
    messages = [first_row, second_row, struct.pack(">h", -1)]
    assert list(pgcopy.single_fields(messages)) == [b"one", b"two"]


def test_int_array_decodes_int4_and_refuses_other_element_types():
    assert pgcopy.int_array(_int4_array([3, -1, 7])).tolist() == [3, -1, 7]
    assert pgcopy.int_array(None).dtype == np.int64
    assert pgcopy.int_array(struct.pack(">iii", 0, 0, 23)).size == 0
    text_array = struct.pack(">iiiii", 1, 0, 25, 1, 1) + struct.pack(">i", 1) + b"x"
    with pytest.raises(pgcopy.CopyFormatError, match="oid 25"):
        pgcopy.int_array(text_array)


@pytest.mark.services
@pytest.mark.django_db
def test_decodes_what_postgresql_sends():
    from django.db import connection

    with connection.cursor() as cursor:
        cur = cursor.cursor
        sql = "SELECT x, NULL::text, ARRAY[x, -x]::int8[] FROM generate_series(1, 3) x"
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            data = b"".join(bytes(m) for m in copy)
    rows = pgcopy.parse(data)
    assert [r[1] for r in rows] == [None, None, None]
    assert [int.from_bytes(r[0], "big") for r in rows] == [1, 2, 3]
    assert [pgcopy.int_array(r[2]).tolist() for r in rows] == [[1, -1], [2, -2], [3, -3]]


def _block(rows: list[list[bytes | None]]) -> tuple[bytes, np.ndarray]:
    """Row messages back to back (no header, no trailer) and each row's size."""
    messages = []
    for row in rows:
        message = struct.pack(">h", len(row))
        for field in row:
            message += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field))
            message += field or b""
        messages.append(message)
    return b"".join(messages), np.array([len(m) for m in messages])


def test_field_spans_find_every_field_of_a_block_at_once():
    rows = [[b"ab", None, struct.pack(">q", 7)], [b"", b"xyz", struct.pack(">q", -2)]]
    data, sizes = _block(rows)
    starts, lengths = pgcopy.field_spans(data, sizes, 3)
    assert lengths.tolist() == [[2, -1, 8], [0, 3, 8]]
    assert [data[s : s + n] for s, n in zip(starts[:, 0], lengths[:, 0], strict=True)] == [
        b"ab",
        b"",
    ]
    assert pgcopy.fixed_width(data, starts[:, 2], ">i8").tolist() == [7, -2]
    offsets = pgcopy.piece_offsets(starts, lengths, len(data))
    pieces = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    assert pieces[1::2] == [b"ab", b"", struct.pack(">q", 7), b"", b"xyz", struct.pack(">q", -2)]
    assert b"".join(pieces) == data


def test_field_spans_refuse_rows_that_do_not_add_up():
    data, sizes = _block([[b"ab", b"cd"], [b"ef", b"gh"]])
    with pytest.raises(pgcopy.CopyFormatError, match="expected 3 fields"):
        pgcopy.field_spans(data, sizes, 3)
    with pytest.raises(pgcopy.CopyFormatError, match="add up"):
        pgcopy.field_spans(data[:-1], sizes, 2)
    cut = sizes.copy()
    cut[-1] -= 1  # the last field's length says one byte more than the row holds
    with pytest.raises(pgcopy.CopyFormatError):
        pgcopy.field_spans(data[:-1], cut, 2)
    shifted = sizes.copy()
    shifted[0] += 1
    shifted[1] -= 1
    with pytest.raises(pgcopy.CopyFormatError):
        pgcopy.field_spans(data, shifted, 2)
