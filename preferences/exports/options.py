"""A release's options, and the prompt key behind its split and dedup.

The split is by prompt: a pair is in ``test`` when the sha256 of its first (scrubbed, stripped)
user turn, read as a number in [0, 1), is below ``test_fraction``; every pair of one prompt lands
in the same split, and adding rows never moves an existing prompt. The dedup keeps the first row
of each prompt, by the first ``DEDUP_KEY_BYTES`` of the same hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "test")
DEDUP_KEY_BYTES = 12
FILE_FORMATS = ("jsonl", "jsonl.gz", "parquet")


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

    @property
    def json_lines(self) -> bool:
        """Whether the files are JSON lines (else Parquet)."""
        return self.file_format != "parquet"


def prompt_key(prompt: str) -> bytes:
    return hashlib.sha256(prompt.strip().encode()).digest()


def dedup_key(prompt: str) -> bytes:
    return prompt_key(prompt)[:DEDUP_KEY_BYTES]


def split_of(prompt: str, test_fraction: float) -> str:
    value = int.from_bytes(prompt_key(prompt)[:8], "big") / 2**64
    return "test" if value < test_fraction else "train"


def split_threshold(test_fraction: float) -> int:
    """The smallest 64-bit prefix value ``v`` with ``v / 2**64 >= test_fraction``: a prompt is in
    ``test`` exactly when its key's first 8 bytes, big-endian, are below it (as ``split_of``,
    which compares floats, decides)."""
    lo, hi = 0, 2**64
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / 2**64 >= test_fraction:
            hi = mid
        else:
            lo = mid + 1
    return lo


def file_name(split: str, file_format: str) -> str:
    return f"{split}.{file_format}"
