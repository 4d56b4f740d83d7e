import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[3]
BATTLES = [
    ("gpt", "llama", "model_a"),
    ("llama", "gpt", "model_b"),
    ("gpt", "mistral", "model_a"),
    ("mistral", "llama", "tie"),
    ("llama", "mistral", "tie (bothbad)"),
    ("mistral", "gpt", "model_a"),
    ("llama", "gpt", "model_a"),
    ("gpt", "mistral", "model_b"),
    ("mistral", "llama", "model_a"),
    ("gpt", "llama", "model_a"),
]


def _rows(with_style: bool) -> list[dict]:
    rows = []
    for k, (a, b, w) in enumerate(BATTLES):
        row = {"model_a": a, "model_b": b, "winner": w}
        if with_style:
            row["conv_metadata"] = {
                "sum_assistant_a_tokens": 100 + 10 * k,
                "sum_assistant_b_tokens": 120,
                "header_count_a": {"h1": k % 2, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
                "header_count_b": {"h1": 0, "h2": 1, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
                "list_count_a": {"ordered": k % 3, "unordered": 1},
                "list_count_b": {"ordered": 0, "unordered": 2},
                "bold_count_a": {"**": k % 4, "__": 0},
                "bold_count_b": {"**": 1, "__": 0},
            }
        rows.append(row)
    return rows


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rating.engine", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_jsonl_table(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows(False)))
    result = _run(str(path), "--anchor", "llama=1100")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["rank", "model", "score", "interval", "votes"]
    llama = next(line for line in lines if " llama " in line)
    assert "1100.0" in llama


def test_cli_parquet_json_style_control_bootstrap(tmp_path):
    path = tmp_path / "battles.parquet"
    pq.write_table(pa.Table.from_pylist(_rows(True)), path)
    result = _run(str(path), "--json", "--style-control", "--seed", "1", "--ties", "half")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(r["name"] for r in data["models"]) == ["gpt", "llama", "mistral"]
    assert data["method"]["style_control"] is True
    assert len(data["params"]["style"]["coefficients"]) == 4

    boot = _run(str(path), "--json", "--ci", "bootstrap", "--bootstrap-rounds", "50")
    assert boot.returncode == 0, boot.stderr
    assert json.loads(boot.stdout)["method"]["bootstrap_rounds"] == 50


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_cli_reports_unknown_label_with_row(tmp_path, suffix):
    rows = _rows(False)
    rows[3]["winner"] = "draw"
    path = tmp_path / f"bad{suffix}"
    text = json.dumps(rows) if suffix == ".json" else "\n".join(json.dumps(r) for r in rows)
    path.write_text(text)
    result = _run(str(path))
    assert result.returncode == 2
    assert "row 3: unknown winner label 'draw'" in result.stderr
