"""Read Chatbot Arena battle files (JSON array, JSONL or Parquet) into engine arrays.

Columns: model_a, model_b, winner ("model_a", "model_b", "tie", "tie (bothbad)"). Style
features, when present, come from FastChat's `conv_metadata` dict (or top-level columns of
the same names): sum_assistant_{a,b}_tokens, header_count_{a,b} {h1..h6},
list_count_{a,b} {ordered, unordered}, bold_count_{a,b} {**, __}; dict values are summed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rating.engine.data import InvalidVoteError, RatingError, parse_outcomes
from rating.engine.style import STYLE_FEATURES, StyleFeatures

_STYLE_KEYS = ("sum_assistant_{}_tokens", "header_count_{}", "list_count_{}", "bold_count_{}")


@dataclass(frozen=True)
class Battles:
    """Battles with models as indices into `model_names` (sorted alphabetically)."""

    model_names: list[str]
    model_a: NDArray[np.int64]
    model_b: NDArray[np.int64]
    outcome: NDArray[np.int8]
    style: StyleFeatures | None


def read_records(path: str | Path) -> list[dict[str, object]]:
    """Rows of a .json (array), .jsonl/.ndjson or .parquet file as dicts."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if suffix in (".jsonl", ".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):  # pandas "columns" orientation: {column: {row: value}}
        cols = {k: list(v.values()) if isinstance(v, dict) else list(v) for k, v in data.items()}
        n = len(next(iter(cols.values()), []))
        return [{k: cols[k][r] for k in cols} for r in range(n)]
    if not isinstance(data, list):
        raise RatingError(f"{path}: expected a JSON array of battle objects")
    return data


def _count(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, dict):
        return float(sum(_count(v) for v in value.values()))
    return float(value)  # type: ignore[arg-type]


def battles_from_records(records: list[dict[str, object]]) -> Battles:
    """Convert rows to arrays; raises `RatingError` naming the first malformed row."""
    for r, rec in enumerate(records):
        missing = [k for k in ("model_a", "model_b", "winner") if rec.get(k) is None]
        if missing:
            raise InvalidVoteError(f"row {r}: missing {', '.join(missing)}")
    a_names = [str(rec["model_a"]) for rec in records]
    b_names = [str(rec["model_b"]) for rec in records]
    names = sorted(set(a_names) | set(b_names))
    index = {n: k for k, n in enumerate(names)}
    outcome = parse_outcomes(np.array([rec["winner"] for rec in records], dtype=object))
    style = None
    if records and all(_has_style(rec) for rec in records):
        fa = np.empty((len(records), 4))
        fb = np.empty((len(records), 4))
        for r, rec in enumerate(records):
            meta = rec.get("conv_metadata") if isinstance(rec.get("conv_metadata"), dict) else rec
            assert isinstance(meta, dict)
            for f, key in enumerate(_STYLE_KEYS):
                fa[r, f] = _count(meta.get(key.format("a")))
                fb[r, f] = _count(meta.get(key.format("b")))
        style = StyleFeatures(fa, fb, STYLE_FEATURES)
    return Battles(
        model_names=names,
        model_a=np.array([index[n] for n in a_names], dtype=np.int64),
        model_b=np.array([index[n] for n in b_names], dtype=np.int64),
        outcome=outcome,
        style=style,
    )


def _has_style(rec: dict[str, object]) -> bool:
    meta = rec.get("conv_metadata")
    source = meta if isinstance(meta, dict) else rec
    return all(k.format(s) in source for k in _STYLE_KEYS for s in "ab")


def read_battles(path: str | Path) -> Battles:
    """Read a battle file (format from the suffix) into `Battles`."""
    return battles_from_records(read_records(path))
