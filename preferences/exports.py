"""Write a stream of pairs to deterministic files: JSONL, JSONL.gz or Parquet, train/test split.

Contract: the same input rows and options give the same bytes. Rows keep the stream's order;
gzip is written with mtime 0 and no file name; Parquet with fixed settings (zstd level 3,
dictionary on, statistics on, format 2.6, a fixed row-group size). Rows are written as they
arrive, so memory is bounded by one Parquet row group, not by the release size.

The split is by prompt: a pair is in ``test`` when the sha256 of its first (scrubbed) user turn,
read as a number in [0, 1), is below ``test_fraction``; every pair of one prompt lands in the same
split, and adding rows never moves an existing prompt.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import yaml

from arena.pii import scrub
from preferences.formats import Format, get_format, hf_features
from preferences.selectors import OUTCOME_BOTH_BAD, OUTCOME_TIE, Pair, Ranking

SPLITS = ("train", "test")
DEDUP_KEY_BYTES = 12
FILE_FORMATS = ("jsonl", "jsonl.gz", "parquet")
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
MANIFEST_NAME = "SHA256SUMS"
CARD_NAME = "README.md"

# --- PII scrubbing (arena.pii) ---------------------------------------------------------------


def scrub_pair(pair: Pair) -> Pair:
    pair.prompts = [scrub(t) for t in pair.prompts]
    pair.response_a = [scrub(t) for t in pair.response_a]
    pair.response_b = [scrub(t) for t in pair.response_b]
    return pair


# --- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    format: str = "trl_standard"
    file_format: str = "jsonl"
    test_fraction: float = 0.1
    dedup_prompts: bool = False
    scrub_pii: bool = True
    margin: bool = False
    license: str = "cc-by-4.0"

    def to_json(self) -> dict[str, Any]:
        return {
            "test_fraction": self.test_fraction,
            "dedup_prompts": self.dedup_prompts,
            "scrub_pii": self.scrub_pii,
            "margin": self.margin,
            "license": self.license,
        }


def prompt_key(prompt: str) -> bytes:
    return hashlib.sha256(prompt.strip().encode()).digest()


def dedup_key(prompt: str) -> bytes:
    return prompt_key(prompt)[:DEDUP_KEY_BYTES]


def split_of(prompt: str, test_fraction: float) -> str:
    value = int.from_bytes(prompt_key(prompt)[:8], "big") / 2**64
    return "test" if value < test_fraction else "train"


def file_name(split: str, file_format: str) -> str:
    return f"{split}.{file_format}"


# --- writers -----------------------------------------------------------------------------------

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


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
    """JSON lines: each row is one line of compact JSON (``_encode``) and a newline."""

    def __init__(self, path: Path, *, gz: bool) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hashing = _Hashing(self._file)
        self._gz = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._hashing, mtime=0, compresslevel=6)
            if gz
            else None
        )
        self._buffer: list[bytes] = []
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self.write_line(_encode(row).encode() + b"\n")

    def write_line(self, line: bytes) -> None:
        """One already encoded line, newline included (the PostgreSQL path hands these)."""
        self._buffer.append(line)
        self.rows += 1
        if len(self._buffer) >= 1000:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            (self._gz or self._hashing).write(b"".join(self._buffer))
            self._buffer = []

    def close(self) -> tuple[str, int]:
        self._flush()
        if self._gz is not None:
            self._gz.close()
        self._file.close()
        return self._hashing.sha.hexdigest(), self._hashing.size


class ParquetWriter:
    """Parquet from JSON lines (``write_line``, as the JSONL writer would write them) or Arrow
    rows (``write_batch``: ``preferences.sql_arrow`` builds them straight from PostgreSQL).

    Lines are parsed by ``pyarrow.json`` against the format's explicit schema; rows are written
    in arrival order in row groups of exactly ``PARQUET_ROW_GROUP`` rows (the last one shorter),
    so every path gives byte-identical files, in memory bounded by one row group.
    """

    def __init__(self, path: Path, *, schema: pa.Schema) -> None:
        self._path = path
        self._schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, **PARQUET_SETTINGS)
        # Row groups are encoded and compressed on this thread, in order, while the caller
        # builds the next ones (pyarrow releases the GIL in both); at most WRITES_IN_FLIGHT
        # wait, one when a group is large (GROUP_IN_FLIGHT_BYTES): that bounds their memory.
        self._writing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-write")
        self._pending: deque[Future[None]] = deque()
        self._lines: list[bytes] = []
        self._tables: list[pa.Table] = []  # rows not yet written, in order, lines after them
        self._buffered = 0  # rows in self._tables
        self._parse = pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error"
        )
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self.write_line(_encode(row).encode() + b"\n")

    def write_line(self, line: bytes) -> None:
        self._lines.append(line)
        self.rows += 1
        if len(self._lines) + self._buffered >= PARQUET_ROW_GROUP:
            self._parse_lines()
            self._write_groups()

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Rows of the schema, after every row written so far."""
        if not batch.num_rows:
            return
        self._parse_lines()
        self._tables.append(pa.Table.from_batches([batch]))
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        self._write_groups()

    def _parse_lines(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        read = pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1)
        table = pa_json.read_json(io.BytesIO(data), read_options=read, parse_options=self._parse)
        self._tables.append(table.select(self._schema.names).cast(self._schema))
        self._buffered += len(self._lines)
        self._lines = []

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
            self._parse_lines()
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


# --- the export --------------------------------------------------------------------------------


@dataclass
class FileInfo:
    name: str
    sha256: str
    bytes: int
    rows: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes, "rows": self.rows}


@dataclass
class ExportResult:
    files: list[FileInfo] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0


def format_rows(
    pairs: Iterable[Pair],
    options: ExportOptions,
    *,
    seen_before: Callable[[bytes], bool] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, row) for every pair that the format can express, deduplicated if asked.

    ``seen_before(key)`` says whether an earlier part of the stream, written elsewhere (the
    PostgreSQL path's arena rows), already had a prompt with that dedup key.
    """
    fmt = get_format(options.format)
    seen: set[bytes] = set()
    for pair in pairs:
        if options.scrub_pii:
            scrub_pair(pair)
        if not fmt.ties and pair.outcome in (OUTCOME_TIE, OUTCOME_BOTH_BAD):
            continue
        prompt = pair.prompts[0]
        if options.dedup_prompts:
            key = dedup_key(prompt)
            if key in seen or (seen_before is not None and seen_before(key)):
                continue
            seen.add(key)
        yield split_of(prompt, options.test_fraction), fmt.row(pair, options.margin)


def rankings_rows(
    rankings: Iterable[Ranking],
    options: ExportOptions,
    *,
    seen_before: Callable[[bytes], bool] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, row) for the raw rankings format, fed ranking by ranking."""
    fmt = get_format(options.format)
    seen: set[bytes] = set()
    for ranking in rankings:
        if options.scrub_pii:
            ranking = Ranking(
                **{
                    **ranking.__dict__,
                    "prompts": [scrub(p) for p in ranking.prompts],
                    "responses": [
                        type(r)(scrub(r.text), r.model, r.labels) for r in ranking.responses
                    ],
                }
            )
        prompt = ranking.prompts[0]
        if options.dedup_prompts:
            key = dedup_key(prompt)
            if key in seen or (seen_before is not None and seen_before(key)):
                continue
            seen.add(key)
        yield split_of(prompt, options.test_fraction), fmt.row(ranking, options.margin)


@runtime_checkable
class LineSource(Protocol):
    """Rows that arrive already encoded as JSON lines, routed to the split writers by the source
    itself (``write_into`` returns the number of rows written and calls ``progress`` at every
    multiple of ``progress_every``)."""

    def write_into(
        self,
        writers: dict[str, Writer],
        *,
        progress: Callable[[int], None] | None,
        progress_every: int,
    ) -> int: ...


def write_splits(
    directory: Path,
    rows: Iterable[tuple[str, dict[str, Any]]] | LineSource,
    options: ExportOptions,
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5000,
) -> ExportResult:
    """Stream ``rows`` into one file per split under ``directory``; returns names and hashes."""
    fmt: Format = get_format(options.format)
    directory.mkdir(parents=True, exist_ok=True)
    schema = fmt.schema(options.margin)
    writers: dict[str, Writer] = {}
    for split in SPLITS:
        path = directory / file_name(split, options.file_format)
        if options.file_format == "parquet":
            writers[split] = ParquetWriter(path, schema=schema)
        else:
            writers[split] = JsonlWriter(path, gz=options.file_format == "jsonl.gz")
    result = ExportResult()
    n = 0
    try:
        if isinstance(rows, LineSource):  # lines built by PostgreSQL (preferences.sql_export)
            n = rows.write_into(writers, progress=progress, progress_every=progress_every)
        else:
            for split, row in rows:
                writers[split].write(row)
                n += 1
                if progress is not None and n % progress_every == 0:
                    progress(n)
    finally:
        for split in SPLITS:
            sha, size = writers[split].close()
            result.files.append(
                FileInfo(file_name(split, options.file_format), sha, size, rows=writers[split].rows)
            )
            result.row_counts[split] = writers[split].rows
    result.rows_read = n
    return result


# --- dataset card and manifest --------------------------------------------------------------


def size_category(n: int) -> str:
    for limit, label in [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]:
        if n < limit:
            return label
    return "10M<n<100M"


def dataset_card(
    *,
    name: str,
    version: str,
    options: ExportOptions,
    filters: dict[str, Any],
    snapshot: dict[str, int],
    result: ExportResult,
    created: str,
) -> str:
    """README.md with the Hugging Face YAML header (configs, splits, features, license)."""
    fmt = get_format(options.format)
    schema = fmt.schema(options.margin)
    builder = "parquet" if options.file_format == "parquet" else "json"
    data_files = {f.name: f for f in result.files}
    header: dict[str, Any] = {
        "license": options.license,
        "pretty_name": f"{name} {version}",
        "tags": ["preference", "rlhf", *fmt.tags],
        "task_categories": ["text-classification", "text-generation"],
        "size_categories": [size_category(sum(result.row_counts.values()))],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": s, "path": file_name(s, options.file_format)} for s in SPLITS
                ],
            }
        ],
        "dataset_info": {
            "features": hf_features(schema),
            "splits": [
                {
                    "name": s,
                    "num_bytes": data_files[file_name(s, options.file_format)].bytes,
                    "num_examples": result.row_counts[s],
                }
                for s in SPLITS
            ],
            "download_size": sum(f.bytes for f in result.files),
        },
    }
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    lines = [
        "---",
        front.rstrip(),
        "---",
        "",
        f"# {name} {version}",
        "",
        f"Human preference data exported by Preference Arena in the **{fmt.title}** format "
        f"(`{options.format}`), as `{options.file_format}`.",
        "",
        "## Provenance",
        "",
        f"- Cut from snapshot: highest vote id {snapshot['max_vote_id']}, highest annotation "
        f"ranking id {snapshot['max_annotation_id']}; created {created}.",
        f"- Filters: `{json.dumps(filters, sort_keys=True)}`",
        f"- Options: `{json.dumps(options.to_json(), sort_keys=True)}`",
        "- Judges are pseudonymous hashes, never names or IP addresses."
        + (
            " Emails and phone numbers in text are replaced by [EMAIL] / [PHONE]."
            if options.scrub_pii
            else ""
        ),
        "- Split: by sha256 of the first user turn, so one prompt never appears in both splits.",
        "",
        "## Files",
        "",
        "| file | rows | bytes | sha256 |",
        "|---|---|---|---|",
        *[f"| {f.name} | {f.rows} | {f.bytes} | `{f.sha256}` |" for f in result.files],
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{builder}", data_files={{"train": TRAIN_URL, "test": TEST_URL}})',
        "```",
        "",
        "Prompts are licensed as stated above; model outputs remain under each provider's terms.",
        "",
    ]
    return "\n".join(lines)


def write_card_and_manifest(directory: Path, card: str, result: ExportResult) -> None:
    """Add README.md and SHA256SUMS (``sha256sum -c`` format) to ``result.files``."""
    data = card.encode()
    (directory / CARD_NAME).write_bytes(data)
    result.files.append(FileInfo(CARD_NAME, hashlib.sha256(data).hexdigest(), len(data)))
    manifest = "".join(f"{f.sha256}  {f.name}\n" for f in result.files).encode()
    (directory / MANIFEST_NAME).write_bytes(manifest)
    result.files.append(
        FileInfo(MANIFEST_NAME, hashlib.sha256(manifest).hexdigest(), len(manifest))
    )
