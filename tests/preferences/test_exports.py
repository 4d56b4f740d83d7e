from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from preferences.exports import (
    ExportOptions,
    iter_rows,
    split_of,
    write_card_and_manifest,
    write_splits,
)
from preferences.selectors import PairFilters
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def _export(tmp_path: Path, fmt: str, file_format: str, **kw) -> tuple[Path, object]:
    options = ExportOptions(format=fmt, file_format=file_format, test_fraction=0.3, **kw)
    result = write_splits(tmp_path, PairFilters(), options)
    return tmp_path, result


@pytest.fixture
def votes():
    for i in range(40):
        f.voted_battle(
            prompts=[f"prompt {i % 25}"], winner="a" if i % 3 else "b", model_b=f"m{i % 4}"
        )


@pytest.mark.parametrize("file_format", ["jsonl", "jsonl.gz", "parquet"])
@pytest.mark.parametrize("fmt", ["trl_standard", "trl_conversational", "openai_dpo", "hh"])
def test_exports_load_back_with_datasets_and_pandas(tmp_path, votes, fmt, file_format):
    import datasets

    directory, result = _export(tmp_path, fmt, file_format)
    assert sum(result.row_counts.values()) == 40
    files = {
        s: str(directory / f"train.{file_format}".replace("train", s)) for s in ("train", "test")
    }
    builder = "parquet" if file_format == "parquet" else "json"
    ds = datasets.load_dataset(builder, data_files=files, cache_dir=str(tmp_path / "hf"))
    assert ds["train"].num_rows == result.row_counts["train"]
    assert ds["test"].num_rows == result.row_counts["test"]
    if fmt == "trl_standard":
        assert ds["train"].column_names == ["prompt", "chosen", "rejected"]
    if file_format == "parquet":
        frame = pd.read_parquet(files["train"])
    else:
        frame = pd.read_json(files["train"], lines=True)
    assert len(frame) == result.row_counts["train"]


def test_same_rows_give_the_same_bytes(tmp_path, votes):
    for file_format in ("jsonl", "jsonl.gz", "parquet"):
        _, one = _export(tmp_path / "one", "trl_conversational", file_format)
        _, two = _export(tmp_path / "two", "trl_conversational", file_format)
        assert [x.sha256 for x in one.files] == [x.sha256 for x in two.files]
        data = (tmp_path / "one" / f"train.{file_format}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == one.files[0].sha256


def test_gzip_has_zero_mtime_and_no_name(tmp_path, votes):
    directory, _ = _export(tmp_path, "hh", "jsonl.gz")
    header = (directory / "train.jsonl.gz").read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0"  # MTIME
    assert header[3] & 0x08 == 0  # no FNAME
    with gzip.open(directory / "train.jsonl.gz") as fh:
        assert fh.readline().startswith(b'{"chosen":')


def test_parquet_uses_fixed_settings(tmp_path, votes):
    directory, _ = _export(tmp_path, "trl_standard", "parquet")
    meta = pq.ParquetFile(directory / "train.parquet").metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.format_version == "2.6"


def test_split_is_by_prompt_and_stable(votes, tmp_path):
    options = ExportOptions(test_fraction=0.3)
    rows = list(iter_rows(PairFilters(), options))
    by_prompt: dict[str, set[str]] = {}
    for split, row in rows:
        by_prompt.setdefault(row["prompt"], set()).add(split)
    assert all(len(s) == 1 for s in by_prompt.values())  # a prompt never straddles splits
    assert {s for s, _ in rows} == {"train", "test"}
    assert split_of("prompt 1", 0.3) == split_of("  prompt 1 ", 0.3)
    assert [split_of(f"p{i}", 0.3) for i in range(50)] == [
        split_of(f"p{i}", 0.3) for i in range(50)
    ]
    share = sum(split_of(f"p{i}", 0.2) == "test" for i in range(5000)) / 5000
    assert 0.17 < share < 0.23


def test_dedup_keeps_the_first_pair_per_prompt(votes):
    rows = list(iter_rows(PairFilters(), ExportOptions(dedup_prompts=True)))
    prompts = [r["prompt"] for _, r in rows]
    assert len(prompts) == 25 == len(set(prompts))
    assert prompts[:3] == ["prompt 0", "prompt 1", "prompt 2"]


def test_card_has_hugging_face_yaml_header_and_manifest_checks(tmp_path, votes):
    from preferences.exports import dataset_card

    options = ExportOptions(format="trl_standard", file_format="jsonl", test_fraction=0.3)
    directory, result = _export(tmp_path, "trl_standard", "jsonl")
    card = dataset_card(
        name="prefs",
        version="1.0",
        options=options,
        filters={},
        snapshot={"max_vote_id": 40, "max_annotation_id": 0},
        result=result,
        created="2026-01-01T00:00:00+00:00",
    )
    write_card_and_manifest(directory, card, result)
    text = (directory / "README.md").read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "cc-by-4.0"
    assert header["configs"][0]["data_files"] == [
        {"split": "train", "path": "train.jsonl"},
        {"split": "test", "path": "test.jsonl"},
    ]
    assert [x["name"] for x in header["dataset_info"]["features"]] == [
        "prompt",
        "chosen",
        "rejected",
    ]
    splits = {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert splits == result.row_counts
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
