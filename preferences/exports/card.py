"""The dataset card (README.md with the Hugging Face YAML header) and the SHA256SUMS manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from preferences.exports.formats import get_format, hf_features
from preferences.exports.options import SPLITS, ExportOptions, file_name

MANIFEST_NAME = "SHA256SUMS"
CARD_NAME = "README.md"


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
