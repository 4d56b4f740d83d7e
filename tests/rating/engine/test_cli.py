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


def _rows(with_style: bool, repeat: int = 1) -> list[dict]:
    rows = []
    for k, (a, b, w) in enumerate(BATTLES * repeat):
        row = {"model_a": a, "model_b": b, "winner": w}
        if with_style:
            row["conv_metadata"] = {
                "sum_assistant_a_tokens": 100 + 10 * (k % 17),
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
    pq.write_table(pa.Table.from_pylist(_rows(True, repeat=12)), path)  # 96 decisive votes
    result = _run(str(path), "--json", "--style-control", "--seed", "1", "--ties", "half")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(r["name"] for r in data["models"]) == ["gpt", "llama", "mistral"]
    assert data["method"]["style_control"] is True and data["status"]["status"] == "ok"
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


def test_cli_withholds_a_style_board_without_enough_votes(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows(True)))  # 8 decisive votes
    result = _run(str(path), "--style-control")
    assert result.returncode == 3
    reason = (
        "not enough votes for a style-controlled board: 8 decisive votes, needs 60 "
        "(10 per parameter: 2 model strengths + 4 style coefficients)"
    )
    assert f"board withheld: {reason}" in result.stdout
    assert f"error: {reason}" in result.stderr
    assert not any(c.isdigit() for line in result.stdout.splitlines()[1:4] for c in line[:25])
    data = json.loads(_run(str(path), "--style-control", "--json").stdout)
    assert data["status"]["status"] == "withheld" and data["status"]["needed_votes"] == 60
    assert all(r["score"] is None for r in data["models"])


def test_cli_small_plain_board_is_regularised_and_says_so(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows(False)))
    result = _run(str(path))
    assert result.returncode == 0, result.stderr
    assert "note: provisional: only 8 decisive votes; an unregularised fit needs 20" in (
        result.stdout
    )
    assert "ties: half: a tie or both-bad vote is half a win for each side" in result.stdout


def test_cli_refuses_abbreviations_and_rounds_without_bootstrap(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows(False)))
    abbreviated = _run(str(path), "--bootstrap", "1000")
    assert abbreviated.returncode == 2 and abbreviated.stdout == ""
    assert "unrecognized arguments: --bootstrap 1000" in abbreviated.stderr
    assert "did you mean --bootstrap-rounds?" in abbreviated.stderr
    rounds_only = _run(str(path), "--bootstrap-rounds", "1000")
    assert rounds_only.returncode == 2 and rounds_only.stdout == ""
    assert "--bootstrap-rounds needs --ci bootstrap" in rounds_only.stderr
    assert _run(str(path), "--ci", "bootstrap", "--bootstrap-rounds", "0").returncode == 2


def test_every_cli_option_has_a_help_line():
    from rating.engine.__main__ import build_parser

    parser = build_parser()
    assert parser.allow_abbrev is False
    assert all(action.help for action in parser._actions)
