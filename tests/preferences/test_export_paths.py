"""One export path, every way in: typed COPY and cursor rows, JSON lines and Parquet agree.

The formats are defined once (``preferences.exports.formats``); what can still differ is how the
rows arrive (a typed binary COPY on PostgreSQL, the cursor's rows on SQLite), how texts are
scrubbed and escaped (stored by PostgreSQL, or computed), and how a block becomes JSON lines.
These tests pin each against the plain Python definition: ``json.dumps`` of the rows, the
selectors' ``Pair`` objects, ``arena.pii.scrub``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.db import connection

from arena.models import Battle, Response, Vote
from preferences.exports import (
    FORMATS,
    ExportOptions,
    iter_rows,
    postgres,
    sources,
    write_splits,
    writers,
)
from preferences.exports.columns import Texts
from preferences.exports.options import SPLITS, split_of, split_threshold
from preferences.exports.tables import PAIRS, pairs_from_turns, pairs_table
from preferences.selectors import PairFilters, iter_arena_pairs
from tests.preferences import factories as f
from tests.preferences import fixture_data

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the typed COPY needs PostgreSQL"
)

TIE_FILTERS = PairFilters(include_ties=True, include_both_bad=True)
OPTION_SETS = [
    {},
    {"dedup_prompts": True, "margin": True, "test_fraction": 0.5},
    {"scrub_pii": False, "test_fraction": 0.0},
]
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@pytest.fixture
def data(rankings_source):
    fixture_data.build(rankings_source)
    # Awkward text: JSON escapes, control characters, non-ASCII, surrounding whitespace that
    # the prompt key strips, PII inside multi-turn answers, empty and missing answers.
    f.voted_battle(
        model_a="gamma",
        model_b="beta",
        prompts=['  quote " back\\slash\ttab\u2028 ', "second\x01turn", "call 555.123.4567"],
        answers_a=["a1 \x7f é ✓ 😀", "a2\r\n", "mail x.y@z.example.com"],
        answers_b=["", "b2 \\u0041", "b3 +15551234567 ok"],
        winner="b",
        categories=["all", 'we"ird', "ünï"],
        minutes=7,
    )
    f.voted_battle(prompts=['quote " back\\slash\ttab\u2028'], winner="a", minutes=8)
    f.voted_battle(prompts=["What is 2+2?"], answers_a=["four"], winner="b", minutes=9)
    f.voted_battle(prompts=["\u3000What is 2+2?\n"], winner="tie", minutes=10)
    f.voted_battle(prompts=["Flagged again"], winner="b", flags=["spam", "x"], minutes=11)
    battle = f.voted_battle(prompts=["no answer b"], winner="a", minutes=12)
    Response.objects.filter(turn__battle=battle, side="b").delete()
    for i in range(30):
        f.voted_battle(prompts=[f"bulk prompt {i % 7} tel 020 7946 {i:04d}"], winner="ab"[i % 2])
    vote = Vote.objects.order_by("id").last()
    Vote.objects.filter(pk=vote.pk).update(created=vote.created + timedelta(microseconds=123457))
    Vote.objects.filter(pk=vote.pk - 1).update(
        created=vote.created + timedelta(microseconds=500000)
    )


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _cases(fmt: str) -> list[tuple[dict, PairFilters]]:
    filters = [TIE_FILTERS if FORMATS[fmt].ties else PairFilters()]
    if FORMATS[fmt].ties:
        filters.append(dataclasses.replace(TIE_FILTERS, include_flagged=True))
    return [(extra, fl) for extra in OPTION_SETS for fl in filters]


@postgres_only
@pytest.mark.parametrize("file_format", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_typed_copy_gives_the_cursor_rows_bytes(data, tmp_path, monkeypatch, fmt, file_format):
    """PostgreSQL's typed COPY (stored scrub, escapes and keys) against the cursor's rows with
    everything computed in Python, as on SQLite."""
    for i, (extra, filters) in enumerate(_cases(fmt)):
        options = ExportOptions(format=fmt, file_format=file_format, **extra)
        typed = write_splits(tmp_path / f"typed{i}", filters, options)
        with monkeypatch.context() as m:
            m.setattr(postgres, "available", lambda: False)
            rows = write_splits(tmp_path / f"rows{i}", filters, options)
        assert _files(tmp_path / f"typed{i}") == _files(tmp_path / f"rows{i}"), (extra, filters)
        assert typed.row_counts == rows.row_counts and sum(rows.row_counts.values()) > 5


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_json_lines_and_parquet_hold_the_rows(data, tmp_path, fmt):
    """Each JSON line is ``json.dumps`` of the row; the Parquet file holds the same rows."""
    for i, (extra, filters) in enumerate(_cases(fmt)):
        expected = {split: [] for split in SPLITS}
        for split, row in iter_rows(filters, ExportOptions(format=fmt, **extra)):
            expected[split].append(row)
        for file_format in ("jsonl.gz", "parquet"):
            options = ExportOptions(format=fmt, file_format=file_format, **extra)
            directory = tmp_path / f"{file_format}{i}"
            write_splits(directory, filters, options)
            for split in SPLITS:
                path = directory / f"{split}.{file_format}"
                if file_format == "parquet":
                    assert pq.read_table(path).to_pylist() == expected[split], (extra, split)
                else:
                    lines = b"".join(_encode(r).encode() + b"\n" for r in expected[split])
                    assert gzip.decompress(path.read_bytes()) == lines, (extra, split)


def test_export_pairs_are_the_selectors_pairs(data):
    """The columnar pairs of the turn rows equal the selectors' ``Pair`` objects (the API's)."""
    for scrub in (True, False):
        for escaped in (True, False):
            options = ExportOptions(scrub_pii=scrub)
            tx = Texts(escaped=escaped)
            from_objects = pairs_table(list(iter_arena_pairs(TIE_FILTERS)), options, tx)
            blocks = list(sources.turn_blocks_from_rows(TIE_FILTERS))
            columnar = pa.concat_tables([pairs_from_turns(b, options, tx) for b in blocks])
            assert columnar.schema == PAIRS
            assert columnar.to_pylist() == from_objects.to_pylist()


def test_small_blocks_never_split_a_vote(data, tmp_path, monkeypatch):
    """Blocks of a row or two (a vote's turns across blocks) and row groups of 4 rows: the
    bytes of one block."""
    options = ExportOptions(format="arena_battles", file_format="parquet", test_fraction=0.4)
    whole = write_splits(tmp_path / "whole", TIE_FILTERS, options)
    monkeypatch.setattr(writers, "PARQUET_ROW_GROUP", 4)
    monkeypatch.setattr(postgres, "BLOCK_BYTES", {"json": 600, "parquet": 600})
    monkeypatch.setattr(sources, "TURN_ROWS_PER_BLOCK", 2)
    monkeypatch.setattr(sources, "OBJECTS_PER_BLOCK", 1)
    small = write_splits(tmp_path / "small", TIE_FILTERS, options)
    assert small.row_counts == whole.row_counts and min(whole.row_counts.values()) > 0
    for split in SPLITS:
        name = f"{split}.parquet"
        assert pq.read_table(tmp_path / "small" / name).equals(
            pq.read_table(tmp_path / "whole" / name)
        )
        assert pq.ParquetFile(tmp_path / "small" / name).metadata.row_group(0).num_rows <= 4


def test_progress_and_the_snapshot(data, tmp_path):
    options = ExportOptions(format="hh")
    cut = Vote.objects.order_by("id").values_list("id", flat=True)[10]
    filters = PairFilters(max_vote_id=cut, sources=("arena",))
    seen: list[int] = []
    result = write_splits(tmp_path, filters, options, progress=seen.append, progress_every=3)
    expected = list(iter_rows(filters, options))
    assert result.rows_read == len(expected) and len(expected) >= 6
    assert seen == list(range(3, len(expected) + 1, 3))


def test_a_category_that_is_not_a_string_is_written_as_its_json(data):
    first = Battle.objects.order_by("id").first()
    Battle.objects.filter(pk=first.pk).update(categories=["all", 3, True])
    rows = [r for _, r in iter_rows(TIE_FILTERS, ExportOptions(format="arena_battles"))]
    assert rows[0]["category_tag"] == ["all", "3", "true"]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.999])
def test_split_threshold_matches_split_of(fraction):
    import hashlib

    threshold = split_threshold(fraction)
    for i in range(2000):
        prompt = f"p{i}"
        value = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        assert (value < threshold) == (split_of(prompt, fraction) == "test")
    if threshold:
        assert (threshold - 1) / 2**64 < fraction <= threshold / 2**64


def test_json_lines_write_numbers_and_texts_as_python_json():
    """The block encoder against ``json.dumps`` on values chosen to differ between writers:
    whole floats, the exponent forms, shortest round-trip digits, control characters, nulls."""
    import random

    from preferences.exports import jsonl
    from preferences.exports.tables import escape_strings

    rng = random.Random(5)
    floats = [1.0, 0.5, 1e-05, 1e-7, 0.0001, 1e16, 1.5e17, 1767268890.123457, -0.0, 2.0]
    floats += [rng.uniform(-1e6, 1e6) for _ in range(200)]
    floats += [10 ** rng.uniform(-9, 20) for _ in range(200)]
    alphabet = ['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "\u2028", "é", "😀", "a", " "]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(410)]
    n = len(floats)
    table = pa.table(
        {
            "f": pa.array(floats, pa.float64()),
            "maybe": pa.array([None if i % 3 else x for i, x in enumerate(floats)], pa.float64()),
            "s": pa.array(texts[:n], pa.string()),
            "l": pa.array([texts[i : i + i % 4] for i in range(n)], pa.list_(pa.string())),
            "i": pa.array(range(n), pa.int64()),
            "b": pa.array([i % 2 == 0 for i in range(n)]),
        }
    )
    escaped = pa.table({c: escape_strings(table[c].combine_chunks()) for c in table.column_names})
    written = bytes(jsonl.line_bytes(jsonl.lines(escaped)))
    assert written == b"".join(_encode(row).encode() + b"\n" for row in table.to_pylist())
    with pytest.raises(ValueError, match="not JSON compliant"):
        jsonl.lines(pa.table({"f": pa.array([float("nan")])}))
