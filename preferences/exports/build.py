"""A release's files: source blocks -> ties, dedup, format, split -> one writer per split.

Every step works on a block of rows at once. The format's ties rule (chosen/rejected formats
leave ties and both-bad votes out) is applied by the queries (``sources``); the dedup keeps the first row of each prompt key across the
whole stream (arena rows, then annotation rows); the split is the key's first 8 bytes against
``split_threshold`` (see :mod:`preferences.exports.options`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from preferences.exports.card import ExportResult, FileInfo
from preferences.exports.columns import Texts
from preferences.exports.formats import get_format
from preferences.exports.options import (
    DEDUP_KEY_BYTES,
    SPLITS,
    ExportOptions,
    file_name,
    split_threshold,
)
from preferences.exports.sources import source_blocks
from preferences.exports.tables import KEY
from preferences.exports.writers import Writer, open_writer
from preferences.selectors import PairFilters


@dataclasses.dataclass(frozen=True)
class Block:
    """A block of the release's rows in the format's schema, each row's split (``test``), and
    whether it was read while a COPY held the database connection."""

    rows: pa.Table
    test: np.ndarray
    busy: bool


def _key_bytes(keys: pa.Array) -> np.ndarray:
    """The keys as an (n, 32) byte matrix."""
    keys = keys.cast(KEY)
    data = np.frombuffer(keys.buffers()[1], np.uint8)
    return data[32 * keys.offset : 32 * (keys.offset + len(keys))].reshape(-1, 32)


def test_rows(keys: pa.Array, test_fraction: float) -> np.ndarray:
    """Which rows go to ``test``: their key's 64-bit prefix below the threshold."""
    threshold = split_threshold(test_fraction)
    if threshold >= 2**64:
        return np.ones(len(keys), bool)
    prefix = _key_bytes(keys)[:, :8].copy().view(">u8")[:, 0]
    return prefix < np.uint64(threshold)


def _first_of_each_prompt(keys: pa.Array, seen: set[bytes]) -> pa.Array:
    keep = []
    for key in map(bytes, _key_bytes(keys)[:, :DEDUP_KEY_BYTES]):
        keep.append(key not in seen)
        seen.add(key)
    return pa.array(keep, pa.bool_())


def _kept(table: pa.Table, options: ExportOptions, seen: set[bytes]) -> pa.Table:
    if options.dedup_prompts and table.num_rows:
        table = table.filter(_first_of_each_prompt(table["key"].combine_chunks(), seen))
    return table


def release_blocks(filters: PairFilters, options: ExportOptions) -> Iterator[Block]:
    """The release's rows, block by block, in the stream's order."""
    fmt = get_format(options.format)
    texts = Texts(escaped=options.json_lines)
    seen: set[bytes] = set()
    for source in source_blocks(filters, options):
        table = _kept(source.table, options, seen)
        if not table.num_rows:
            continue
        rows = fmt.table(table, texts, options.margin)
        test = test_rows(table["key"].combine_chunks(), options.test_fraction)
        yield Block(rows, test, source.busy)


def iter_rows(filters: PairFilters, options: ExportOptions) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, row as Python values) for every row of a release, in order (texts as written to
    Parquet; a JSON lines file holds ``json.dumps`` of each row)."""
    plain = dataclasses.replace(options, file_format="parquet")
    for block in release_blocks(filters, plain):
        for test, row in zip(block.test, block.rows.to_pylist(), strict=True):
            yield SPLITS[int(test)], row


class _Progress:
    """``progress`` at every multiple of ``every``. While a COPY holds the connection, a
    ``progress`` that writes on it (inline, not the worker's reporter thread, which marks
    itself ``threaded``) is called for the marks passed once the COPY is over."""

    def __init__(self, progress: Callable[[int], None] | None, every: int) -> None:
        self.progress = progress
        self.every = every
        self.mark = every
        self.pending: list[int] = []
        self.live = progress is not None and getattr(progress, "threaded", False)

    def passed(self, n: int, *, busy: bool) -> None:
        if self.progress is None:
            return
        if not busy:
            self.flush()
        while n >= self.mark:
            if self.live or not busy:
                self.progress(self.mark)
            else:
                self.pending.append(self.mark)
            self.mark += self.every

    def flush(self) -> None:
        for mark in self.pending:
            self.progress(mark)  # type: ignore[misc]
        self.pending = []


def write_splits(
    directory: Path,
    filters: PairFilters,
    options: ExportOptions,
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5000,
) -> ExportResult:
    """Write the release's rows into one file per split under ``directory``; returns names,
    hashes and counts."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = get_format(options.format).schema(options.margin)
    writers: dict[str, Writer] = {
        split: open_writer(
            directory / file_name(split, options.file_format), options.file_format, schema
        )
        for split in SPLITS
    }
    result = ExportResult()
    reporter = _Progress(progress, progress_every)
    n = 0
    try:
        for block in release_blocks(filters, options):
            test = pa.array(block.test)
            if block.test.all() or not block.test.any():
                writers[SPLITS[int(block.test.all())]].write_block(block.rows)
            else:
                writers["train"].write_block(block.rows.filter(pc.invert(test)))
                writers["test"].write_block(block.rows.filter(test))
            n += block.rows.num_rows
            reporter.passed(n, busy=block.busy)
        reporter.flush()
    finally:
        for split in SPLITS:
            sha, size = writers[split].close()
            name = file_name(split, options.file_format)
            result.files.append(FileInfo(name, sha, size, rows=writers[split].rows))
            result.row_counts[split] = writers[split].rows
    result.rows_read = n
    return result
