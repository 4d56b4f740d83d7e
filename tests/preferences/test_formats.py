from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from preferences import services
from preferences.exports import FORMATS, ExportOptions, iter_rows, write_splits
from preferences.selectors import PairFilters
from tests.preferences import factories as f
from tests.preferences import fixture_data

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "golden"
TIE_FILTERS = PairFilters(include_ties=True, include_both_bad=True)


def _rows(fmt: str, filters: PairFilters | None = None, **options) -> list[dict]:
    options = ExportOptions(format=fmt, **options)
    filters = filters or (TIE_FILTERS if FORMATS[fmt].ties else PairFilters())
    return [row for _, row in iter_rows(filters, options)]


@pytest.fixture
def fixture(rankings_source):
    fixture_data.build(rankings_source)


def _messages(value, roles=None):
    assert isinstance(value, list) and value
    for m in value:
        assert set(m) == {"role", "content"} and isinstance(m["content"], str)
        assert m["role"] in (roles or {"user", "assistant"})
    return value


def test_trl_standard_has_prompt_chosen_rejected_strings_and_optional_margin(fixture):
    rows = _rows("trl_standard")
    assert rows and all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert rows[0] == {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}
    with_margin = _rows("trl_standard", margin=True)
    assert all(set(r) == {"prompt", "chosen", "rejected", "margin"} for r in with_margin)
    assert all(isinstance(r["margin"], float) for r in with_margin)
    ranked = {(r["chosen"], r["rejected"]): r["margin"] for r in with_margin}
    assert ranked[("reply 1 to Sort these fruits", "reply 2 to Sort these fruits")] == 2.0


def test_trl_conversational_uses_message_lists(fixture):
    for row in _rows("trl_conversational"):
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert _messages(row["prompt"], {"user"})
        assert _messages(row["chosen"])[0]["role"] == "assistant"
        assert _messages(row["rejected"])[0]["role"] == "assistant"
        assert len(row["chosen"]) == len(row["rejected"])


def test_hh_rows_are_full_transcripts_with_a_shared_prompt(fixture):
    rows = _rows("hh")
    for row in rows:
        assert set(row) == {"chosen", "rejected"}
        for text in row.values():
            assert text.startswith("\n\nHuman: ") and "\n\nAssistant: " in text
        first_turn = row["chosen"].split("\n\nAssistant: ")[0]
        assert row["rejected"].startswith(first_turn)
    assert rows[0] == {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5",
    }


def test_openai_dpo_rows_follow_the_fine_tuning_spec(fixture):
    for row in _rows("openai_dpo"):
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert set(row["input"]) == {"messages"}
        assert _messages(row["input"]["messages"])[-1]["role"] == "user"
        assert len(_messages(row["preferred_output"], {"assistant"})) == 1
        assert len(_messages(row["non_preferred_output"], {"assistant"})) == 1


def test_arena_battle_rows_follow_chatbot_arena_conversations(fixture):
    rows = _rows("arena_battles")
    required = {
        "question_id": str,
        "model_a": str,
        "model_b": str,
        "winner": str,
        "judge": str,
        "conversation_a": list,
        "conversation_b": list,
        "turn": int,
        "anony": bool,
        "language": str,
        "tstamp": float,
    }
    for row in rows:
        for name, kind in required.items():
            assert isinstance(row[name], kind), name
        assert row["winner"] in {"model_a", "model_b", "tie", "tie (bothbad)"}
        assert len(row["conversation_a"]) == 2 * row["turn"]
    assert {r["winner"] for r in rows} == {"model_a", "model_b", "tie", "tie (bothbad)"}
    multi = next(r for r in rows if r["turn"] == 2)
    assert [m["role"] for m in multi["conversation_a"]] == ["user", "assistant"] * 2


def test_rankings_rows_keep_order_ties_and_labels(fixture):
    rows = [r for r in _rows("rankings") if r["source"] == "annotation"]
    assert [r["id"] for r in rows] == ["annotation:1", "annotation:2", "annotation:3"]
    first = rows[0]
    assert [resp["rank"] for resp in first["responses"]] == [2, 1, 3]
    assert json.loads(first["responses"][0]["labels"]) == {"helpful": True}
    assert [resp["rank"] for resp in rows[1]["responses"]] == [1, 1]
    assert isinstance(first["trust"], float) and first["judge"] == "ann-1"


def test_chosen_rejected_formats_refuse_ties(researcher, enqueued):
    for fmt in ("trl_standard", "trl_conversational", "hh", "openai_dpo"):
        with pytest.raises(services.ApplicationError) as err:
            services.release_create(
                user=researcher, name="x", version="1", format=fmt, filters=TIE_FILTERS
            )
        assert err.value.code == "format_cannot_express_ties"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden_file(fmt, fixture, tmp_path):
    """Byte-exact output of the fixed fixture; UPDATE_GOLDEN=1 rewrites the files."""
    f.llm("alpha")
    filters = TIE_FILTERS if FORMATS[fmt].ties else PairFilters()
    options = ExportOptions(format=fmt, file_format="jsonl", test_fraction=0.3, margin=True)
    write_splits(tmp_path, filters, options)
    produced = (tmp_path / "train.jsonl").read_bytes() + b"--- test ---\n"
    produced += (tmp_path / "test.jsonl").read_bytes()
    golden = GOLDEN / f"{fmt}.jsonl"
    if os.environ.get("UPDATE_GOLDEN") == "1" or not golden.exists():
        golden.write_bytes(produced)
    assert produced == golden.read_bytes()
    for secret in (b"jo@example.com", b"7946", b"123-4567"):
        assert secret not in produced
