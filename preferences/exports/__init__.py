"""Preference releases: each export format defined once, written as JSON lines or Parquet.

A release is read as blocks of Arrow rows (:mod:`.sources`: arena turn rows through a typed
binary COPY on PostgreSQL or the cursor elsewhere, annotation rankings from the selectors), each
block turned into pairs or rankings (:mod:`.tables`), then into the format's columns by its one
definition (:mod:`.formats`), then split and written (:mod:`.build`, :mod:`.writers`; JSON lines
by :mod:`.jsonl`). The dataset card and manifest: :mod:`.card`. Options and the prompt key:
:mod:`.options`.
"""

from preferences.exports.build import Block, iter_rows, release_blocks, write_splits
from preferences.exports.card import (
    CARD_NAME,
    MANIFEST_NAME,
    ExportResult,
    FileInfo,
    dataset_card,
    size_category,
    write_card_and_manifest,
)
from preferences.exports.formats import FORMAT_CHOICES, FORMATS, Format, get_format, hf_features
from preferences.exports.options import (
    DEDUP_KEY_BYTES,
    FILE_FORMATS,
    SPLITS,
    ExportOptions,
    dedup_key,
    file_name,
    prompt_key,
    split_of,
    split_threshold,
)
from preferences.exports.writers import (
    PARQUET_ROW_GROUP,
    PARQUET_SETTINGS,
    JsonlWriter,
    ParquetWriter,
    Writer,
)

__all__ = [
    "CARD_NAME",
    "DEDUP_KEY_BYTES",
    "FILE_FORMATS",
    "FORMATS",
    "FORMAT_CHOICES",
    "MANIFEST_NAME",
    "PARQUET_ROW_GROUP",
    "PARQUET_SETTINGS",
    "SPLITS",
    "Block",
    "ExportOptions",
    "ExportResult",
    "FileInfo",
    "Format",
    "JsonlWriter",
    "ParquetWriter",
    "Writer",
    "dataset_card",
    "dedup_key",
    "file_name",
    "get_format",
    "hf_features",
    "iter_rows",
    "prompt_key",
    "release_blocks",
    "size_category",
    "split_of",
    "split_threshold",
    "write_card_and_manifest",
    "write_splits",
]
