"""arena.counts: per-vote increments in the vote's transaction, rebuild from the votes."""

import threading

import pytest
from django.db import connection, transaction

from arena.counts import counts_add_vote, counts_rebuild, recount
from arena.models import Battle, Vote, VoteCount
from tests.rating import factories as f


def table() -> dict:
    return {
        (c, a, b, o): n
        for c, a, b, o, n in VoteCount.objects.values_list(
            "category", "model_a_id", "model_b_id", "outcome", "count"
        )
    }


@pytest.mark.django_db
def test_a_vote_counts_once_in_every_category_of_its_battle():
    a, b = f.llm("alpha"), f.llm("beta")
    f.vote(f.battle(a, b, categories=["all", "coding", "lang:en"]), "a")
    f.vote(f.battle(a, b, categories=["all", "coding"]), "a")
    assert table() == {
        ("all", a.pk, b.pk, "a"): 2,
        ("coding", a.pk, b.pk, "a"): 2,
        ("lang:en", a.pk, b.pk, "a"): 1,
    }


@pytest.mark.django_db
def test_flagged_votes_and_named_battles_are_not_counted():
    a, b = f.llm("alpha"), f.llm("beta")
    f.vote(f.battle(a, b), "a", flags=["identity_leak"])
    f.vote(f.battle(a, b, mode=Battle.Mode.NAMED), "b")
    assert table() == {}


@pytest.mark.django_db(transaction=True)
def test_counts_add_vote_refuses_to_run_outside_a_transaction():
    a, b = f.llm("alpha"), f.llm("beta")
    bt = f.battle(a, b)
    vote = Vote.objects.create(battle=bt, winner="a", voter="x", turns=1)
    with pytest.raises(RuntimeError):
        counts_add_vote(vote)


@pytest.mark.django_db
def test_rebuild_applies_late_flags_and_reports_drift():
    a, b = f.llm("alpha"), f.llm("beta")
    votes = f.votes(a, b, "a", 3, categories=["all", "coding"])
    Vote.objects.filter(pk=votes[0].pk).update(flags=["anomalous_voter"])
    VoteCount.objects.create(category="ghost", model_a=a, model_b=b, outcome="tie", count=4)
    report = counts_rebuild()
    assert table() == {("all", a.pk, b.pk, "a"): 2, ("coding", a.pk, b.pk, "a"): 2}
    assert report["votes_drift"] == 1 + 1 + 4
    assert counts_rebuild()["votes_drift"] == 0


@pytest.mark.django_db
def test_battle_stored_without_all_still_counts_overall_in_the_rebuild():
    a, b = f.llm("alpha"), f.llm("beta")
    f.vote(f.battle(a, b, categories=["coding"]), "b")
    assert table() == {("all", a.pk, b.pk, "b"): 1, ("coding", a.pk, b.pk, "b"): 1}
    assert counts_rebuild()["votes_drift"] == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_counts_equal_a_recount_after_concurrent_voting_on_postgresql():
    """Threads vote at once on the same cells; additive upserts lose nothing."""
    models = [f.llm(f"m{i}") for i in range(3)]
    battles = []
    for k in range(120):
        a, b = models[k % 3], models[(k + 1) % 3]
        battles.append(f.battle(a, b, categories=["all", "coding"] if k % 2 else ["all"]))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(chunk: list[Battle]) -> None:
        try:
            barrier.wait()
            for k, bt in enumerate(chunk):
                with transaction.atomic():
                    vote = Vote.objects.create(
                        battle=bt, winner=["a", "b", "tie"][k % 3], voter=bt.voter, turns=1
                    )
                    counts_add_vote(vote)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(battles[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert table() == recount()
    assert sum(n for (c, *_), n in table().items() if c == "all") == 120
    assert counts_rebuild()["votes_drift"] == 0
