"""Deterministic files from blocks of a format's rows: JSON lines (optionally gzip) or Parquet.

Contract: the same rows give the same bytes. Rows keep their order; gzip is written with mtime 0
and no file name; Parquet with fixed settings (zstd level 3, dictionary on, statistics on,
format 2.6) in row groups of exactly ``PARQUET_ROW_GROUP`` rows (the last one shorter), so
memory is bounded by a block and a row group or two, not by the release size.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from preferences.exports import jsonl

PARQUET_ROW_GROUP = 5000
WRITES_IN_FLIGHT = 2  # row groups handed to a Parquet writer's thread and not yet written
GROUP_IN_FLIGHT_BYTES = 16 << 20  # a larger row group (long texts) waits for the one before it
PARQUET_SETTINGS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


class _Hashing(io.RawIOBase):
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.raw.write(b)


class JsonlWriter:
    """JSON lines: a block's rows (strings as JSON escapes) encoded by ``jsonl.lines``."""

    def __init__(self, path: Path, *, gz: bool) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hashing = _Hashing(self._file)
        self._gz = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._hashing, mtime=0, compresslevel=6)
            if gz
            else None
        )
        self.rows = 0

    def write_block(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        (self._gz or self._hashing).write(jsonl.line_bytes(jsonl.lines(table)))
        self.rows += table.num_rows

    def close(self) -> tuple[str, int]:
        if self._gz is not None:
            self._gz.close()
        self._file.close()
        return self._hashing.sha.hexdigest(), self._hashing.size


class ParquetWriter:
    """Parquet from blocks of rows of the format's schema, in row groups of exactly
    ``PARQUET_ROW_GROUP`` rows whatever the blocks' sizes."""

    def __init__(self, path: Path, *, schema: pa.Schema) -> None:
        self._path = path
        self._schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, **PARQUET_SETTINGS)
        # Row groups are encoded and compressed on this thread, in order, while the caller
        # builds the next ones (pyarrow releases the GIL in both); at most WRITES_IN_FLIGHT
        # wait, one when a group is large (GROUP_IN_FLIGHT_BYTES): that bounds their memory.
        self._writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-write")
        self._pending: deque[Future[None]] = deque()
        self._tables: list[pa.Table] = []  # rows not yet written, in order
        self._buffered = 0  # rows in self._tables
        self.rows = 0

    def write_block(self, table: pa.Table) -> None:
        """Rows of the schema, after every row written so far."""
        if not table.num_rows:
            return
        self._tables.append(table)
        self._buffered += table.num_rows
        self.rows += table.num_rows
        self._write_groups()

    def _write_groups(self, *, last: bool = False) -> None:
        """Every full row group buffered (and, ``last``, the rest) to the writer thread."""
        while self._buffered >= PARQUET_ROW_GROUP or (last and self._buffered):
            rows = pa.concat_tables(self._tables)
            group = rows.slice(0, PARQUET_ROW_GROUP)
            rest = rows.slice(PARQUET_ROW_GROUP)
            self._tables = [rest] if rest.num_rows else []
            self._buffered = rest.num_rows
            small = group.nbytes <= GROUP_IN_FLIGHT_BYTES
            self._wait(WRITES_IN_FLIGHT - 1 if small else 0)
            self._pending.append(self._writing.submit(self._write_group, group))

    def _write_group(self, group: pa.Table) -> None:
        self._writer.write_table(group.combine_chunks(), row_group_size=PARQUET_ROW_GROUP)

    def _wait(self, keep: int = 0) -> None:
        """Until at most ``keep`` writes are pending; a write's error is raised here."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def close(self) -> tuple[str, int]:
        try:
            self._write_groups(last=True)
            self._wait()
        finally:
            self._writing.shutdown(wait=True)
            self._writer.close()
        sha = hashlib.sha256()
        size = 0
        with open(self._path, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), size


Writer = JsonlWriter | ParquetWriter


def open_writer(path: Path, file_format: str, schema: pa.Schema) -> Writer:
    if file_format == "parquet":
        return ParquetWriter(path, schema=schema)
    return JsonlWriter(path, gz=file_format == "jsonl.gz")
