"""manage.py import_battles: same ranking as the engine CLI on the same file; idempotent."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from arena.models import LLM, Battle, Vote
from rating import selectors, services
from rating.engine.__main__ import main as engine_cli

FIXTURE = Path(__file__).parent / "fixtures" / "battles_small.jsonl"


@pytest.mark.django_db
def test_import_gives_the_engine_cli_leaderboard(capsys):
    call_command("import_battles", str(FIXTURE))
    capsys.readouterr()
    services.leaderboard_recompute_full(detect_anomalies=False)
    snap = selectors.snapshot_latest()
    assert engine_cli([str(FIXTURE), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    ours = [(r["name"], round(r["score"], 6), r["rank"], r["votes"]) for r in snap.rows]
    theirs = [(r["name"], round(r["score"], 6), r["rank"], r["votes"]) for r in cli["models"]]
    assert ours == theirs
    assert snap.votes_counted == 400


@pytest.mark.django_db
def test_import_is_idempotent_and_creates_inactive_models(capsys):
    call_command("import_battles", str(FIXTURE))
    first = json.loads(capsys.readouterr().out)
    assert first["created"] == 400 and first["models_created"] == 5
    call_command("import_battles", str(FIXTURE))
    second = json.loads(capsys.readouterr().out)
    assert second == {**first, "created": 0, "skipped": 400, "models_created": 0}
    assert Battle.objects.count() == Vote.objects.count() == 400
    imported = LLM.objects.filter(provider__name="imported")
    assert imported.count() == 5 and not imported.filter(active=True).exists()
    assert imported.get(slug="gpt-4-0613").display_name == "gpt-4-0613"


@pytest.mark.django_db
def test_import_keeps_conversations_and_tags_categories(capsys):
    call_command("import_battles", str(FIXTURE))
    battle = Battle.objects.filter(turns__prompt__startswith="Write a python").first()
    assert "coding" in battle.categories
    assert f"lang:{battle.language}" in battle.categories and battle.language in {"en", "de", "zh"}
    responses = {r.side: r for r in battle.turns.get().responses.all()}
    assert responses["a"].header_count == 1 and responses["a"].list_count == 2
    assert responses["a"].bold_count == 1
    # The vote carries the conversation's per-side totals (what style control reads).
    vote = battle.vote
    for side in "ab":
        for name in Vote.STYLE_FIELDS:
            total = sum(getattr(r, name) for r in battle.turns.get().responses.filter(side=side))
            assert getattr(vote, f"{side}_{name}") == total
    assert vote.a_header_count == 1 and vote.a_list_count == 2 and vote.a_length > 0


@pytest.mark.django_db
def test_a_bad_row_is_named_and_nothing_is_written(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"model_a": "x", "model_b": "y", "winner": "model_a"})
        + "\n"
        + json.dumps({"model_a": "x", "model_b": "y", "winner": "left"})
        + "\n"
    )
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="row 1"):
        call_command("import_battles", str(bad))
    assert Battle.objects.count() == 0
