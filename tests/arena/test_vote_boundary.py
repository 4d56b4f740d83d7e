"""The arena functions the rating app uses instead of writing arena's tables itself: vote flags,
sampling weights, imported battles and models, and the vote-id reads of the count catch-up."""

import uuid

import numpy as np
import pytest
from django.db.models import Sum

from arena import counts, selectors, services
from arena.models import LLM, Battle, PairSamplingWeight, Response, Turn, Vote, VoteCount
from core.errors import ApplicationError
from tests.arena.factories import battle_with_turn, demo_models, voter

pytestmark = pytest.mark.django_db


def _votes(n: int) -> list[Vote]:
    """``n`` votes cast through the vote service (two demo models, made on the first call)."""
    a, b = LLM.objects.order_by("pk")[:2] if LLM.objects.exists() else demo_models(2)
    out = []
    for _ in range(n):
        v = voter()
        battle = battle_with_turn(a, b, voter=v)
        vote, created = services.vote_cast(battle_id=battle.public_id, voter=v, winner="a")
        assert created
        out.append(vote)
    return out


def _counted() -> int:
    return VoteCount.objects.aggregate(n=Sum("count"))["n"] or 0


def test_votes_flag_adds_the_flag_once_and_keeps_other_flags():
    first, second, third = _votes(3)
    Vote.objects.filter(pk=second.pk).update(flags=["identity_leak"])
    counted = _counted()
    flag = Vote.Flag.ANOMALOUS_VOTER

    assert services.votes_flag(vote_ids=[first.pk, second.pk], flag=flag) == 2
    flags = dict(Vote.objects.values_list("pk", "flags"))
    assert flags == {first.pk: [flag], second.pk: ["identity_leak", flag], third.pk: []}

    # Idempotent: a second call (and a vote that already has the flag) changes nothing.
    assert services.votes_flag(vote_ids=[first.pk, second.pk], flag=flag) == 0
    assert services.votes_flag(vote_ids=[first.pk, third.pk], flag=flag) == 1
    flags = dict(Vote.objects.values_list("pk", "flags"))
    assert flags == {first.pk: [flag], second.pk: ["identity_leak", flag], third.pk: [flag]}
    assert _counted() == counted  # counts are the rebuild's job, not the flag's


def test_votes_flag_with_no_ids_or_unknown_ids_writes_nothing():
    (vote,) = _votes(1)
    assert services.votes_flag(vote_ids=[], flag="moderated") == 0
    assert services.votes_flag(vote_ids=[vote.pk + 1000], flag="moderated") == 0
    vote.refresh_from_db()
    assert vote.flags == []


def test_votes_flag_refuses_an_unknown_flag():
    (vote,) = _votes(1)
    with pytest.raises(ApplicationError) as excinfo:
        services.votes_flag(vote_ids=[vote.pk], flag="suspicious")
    assert excinfo.value.code == "invalid_flag"
    vote.refresh_from_db()
    assert vote.flags == []


def test_sampling_weights_replace_swaps_the_whole_table():
    a, b, c = demo_models(3)
    PairSamplingWeight.objects.create(model_a=a, model_b=c, weight=0.9)
    weights = [(a.pk, b.pk, 0.25), (b.pk, c.pk, 0.75)]
    assert services.sampling_weights_replace(weights=weights) == 2
    rows = sorted(PairSamplingWeight.objects.values_list("model_a_id", "model_b_id", "weight"))
    assert rows == sorted(weights)
    assert PairSamplingWeight.objects.values("updated").distinct().count() == 1
    assert services.sampling_weights_replace(weights=[]) == 0
    assert not PairSamplingWeight.objects.exists()


def test_vote_ids_and_the_ids_committed_or_deleted_since_a_read():
    votes = _votes(5)
    ids = np.array(sorted(v.pk for v in votes), dtype=np.int64)
    assert selectors.vote_ids().tolist() == ids.tolist()

    nothing_new, gone = selectors.vote_ids_since(ids)
    assert nothing_new.size == 0 and not gone.any() and gone.size == ids.size

    # A read that missed a vote in the middle (its transaction was still open) and one after.
    read = np.delete(ids, 2)
    (later,) = _votes(1)
    new, gone = selectors.vote_ids_since(read)
    assert new.tolist() == [int(ids[2]), later.pk] and not gone.any()

    # A vote read, then deleted.
    Vote.objects.filter(pk=int(ids[1])).delete()
    new, gone = selectors.vote_ids_since(ids)
    assert new.tolist() == [later.pk]
    assert gone.tolist() == [False, True, False, False, False]

    everything, gone = selectors.vote_ids_since(np.zeros(0, dtype=np.int64))
    assert everything.tolist() == selectors.vote_ids().tolist() and gone.size == 0


def test_vote_ids_since_reads_every_id_when_the_read_has_many_gaps(monkeypatch):
    votes = _votes(4)
    ids = np.array(sorted(v.pk for v in votes), dtype=np.int64)
    monkeypatch.setattr(selectors, "_MAX_GAPS", 0)
    Vote.objects.filter(pk=int(ids[0])).delete()
    new, gone = selectors.vote_ids_since(ids[[0, 2]])
    assert new.tolist() == [int(ids[1]), int(ids[3])]
    assert gone.tolist() == [True, False]


def _imported(a: LLM, b: LLM, public_id: uuid.UUID) -> services.ImportedBattle:
    battle = Battle(
        public_id=public_id, model_a=a, model_b=b, voter="judge", state=Battle.State.VOTED,
        categories=["all"],
    )  # fmt: skip
    turn = Turn(battle=battle, index=0, prompt="hi", prompt_chars=2)
    responses = [
        Response(turn=turn, side=side, text="x", state=Response.State.DONE, length=n)
        for side, n in (("a", 10), ("b", 20))
    ]
    vote = Vote(battle=battle, winner="b", voter="judge", turns=1)
    vote.set_style_from(responses)
    return services.ImportedBattle(battle, [turn], responses, vote)


def test_imported_battles_are_stored_once_and_known_by_public_id():
    a, b = demo_models(2)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert selectors.battles_known(public_ids=[first, second]) == set()
    assert services.battles_import_create(battles=[_imported(a, b, first)]) == 1
    assert selectors.battles_known(public_ids=[first, second]) == {first}
    again = [_imported(a, b, first), _imported(a, b, second)]
    assert services.battles_import_create(battles=again) == 1
    assert Battle.objects.count() == Vote.objects.count() == 2
    vote = Vote.objects.get(battle__public_id=second)
    assert (vote.a_length, vote.b_length, vote.winner) == (10, 20, "b")
    assert Response.objects.filter(turn__battle=vote.battle).count() == 2


def test_imported_models_are_created_inactive_once():
    (existing,) = demo_models(1)
    names = {existing.slug: "whatever", "new-model": "New/Model"}
    found, created = services.llms_create_imported(names=names)
    assert created == 1 and found[existing.slug] == existing
    new = found["new-model"]
    assert new.display_name == "New/Model" and new.provider.name == "imported"
    assert not (new.active or new.use_in_arena or new.use_in_annotation)
    again, created = services.llms_create_imported(names=names)
    assert created == 0 and again == found


def test_model_reads_by_pk_and_for_the_arena():
    a, b, c = demo_models(3)
    c.use_in_arena = False
    c.save(update_fields=["use_in_arena"])
    assert selectors.llms_by_pk([a.pk, c.pk, c.pk + 100]) == {a.pk: a, c.pk: c}
    assert sorted(selectors.llm_pks_for_arena()) == sorted([a.pk, b.pk])


def test_flagged_vote_categories_of_anonymous_battles_only():
    first, second, third = _votes(3)
    Battle.objects.filter(pk=first.battle_id).update(categories=["all", "coding"])
    Battle.objects.filter(pk=third.battle_id).update(mode=Battle.Mode.NAMED)
    services.votes_flag(vote_ids=[first.pk, third.pk], flag="moderated")
    assert selectors.flagged_vote_categories() == [["all", "coding"]]


def test_count_totals_and_one_models_cells():
    a, b, c = demo_models(3)
    VoteCount.objects.bulk_create(
        [
            VoteCount(category="all", model_a=a, model_b=b, outcome="a", count=3),
            VoteCount(category="all", model_a=c, model_b=a, outcome="tie", count=2),
            VoteCount(category="all", model_a=b, model_b=c, outcome="b", count=0),
            VoteCount(category="coding", model_a=a, model_b=b, outcome="b", count=1),
            VoteCount(category="gone", model_a=a, model_b=b, outcome="b", count=0),
        ]
    )
    assert counts.counts_totals() == {"all": 5, "coding": 1}
    as_a, as_b = counts.counts_of_model(a.pk, category="all")
    assert (as_a, as_b) == ([(b.pk, "a", 3)], [(c.pk, "tie", 2)])
    assert counts.counts_of_model(c.pk, category="all") == ([(a.pk, "tie", 2)], [])
