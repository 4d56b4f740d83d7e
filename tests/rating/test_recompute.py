"""Full recompute internals: one-row-per-vote read, count rebuild from memory with catch-up."""

import threading

import numpy as np
import pytest
from django.db import connection, transaction

from arena.counts import counts_add_vote, recount
from arena.models import Battle, Vote, VoteCount
from rating import selectors, services
from rating.selectors.votes import FLAGS
from tests.rating import factories as f


def table() -> dict:
    return {
        (c, a, b, o): n
        for c, a, b, o, n in VoteCount.objects.values_list(
            "category", "model_a_id", "model_b_id", "outcome", "count"
        )
    }


@pytest.fixture
def arena(db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.vote(
        f.battle(a, b, categories=["all", "coding"], features=((120, 2, 3, 1), (80, 0, 0, 0))), "a"
    )
    f.vote(f.battle(b, c, categories=["all", "lang:de"]), "tie")
    f.vote(f.battle(c, a, voter="w2"), "b", flags=["identity_leak"])
    f.vote(f.battle(a, c, mode=Battle.Mode.NAMED), "a")
    f.vote(f.battle(a, b, voter="w3"), "both_bad", flags=["anomalous_voter"])
    return a, b, c


def test_vote_arrays_read_one_row_per_vote_with_its_style_and_tags(arena):
    a, b, c = arena
    arr = selectors.arena_vote_arrays()
    assert arr.size == 5 and list(arr.vote_id) == sorted(arr.vote_id)
    assert list(arr.model_a) == [a.pk, b.pk, c.pk, a.pk, a.pk]
    assert list(arr.model_b) == [b.pk, c.pk, a.pk, c.pk, b.pk]
    assert list(arr.outcome) == [0, 2, 1, 0, 3]
    assert list(arr.anonymous) == [True, True, True, False, True]
    assert list(arr.flagged) == [False, False, True, False, True]
    assert list(arr.anomalous) == [False, False, False, False, True]
    assert arr.features_a[0].tolist() == [120, 2, 3, 1]
    assert arr.features_b[0].tolist() == [80, 0, 0, 0]
    assert arr.features_a[1].tolist() == [100, 0, 0, 0]
    assert list(arr.categories["coding"]) == [True, False, False, False, False]
    assert list(arr.categories["lang:de"]) == [False, True, False, False, False]
    assert arr.categories["all"].all()
    assert arr.voter[2] != arr.voter[0] and arr.voter[0] == arr.voter[1]  # both "voter-1"
    subset = selectors.arena_vote_arrays(ids=[int(arr.vote_id[1])])
    assert subset.size == 1 and subset.features_a[0].tolist() == [100, 0, 0, 0]
    assert selectors.arena_vote_arrays(ids=[]).size == 0


def test_vote_arrays_carry_each_flag_and_count_excluded_votes_by_flag(arena):
    arr = selectors.arena_vote_arrays()
    leak, anomalous = (1 << FLAGS.index(flag) for flag in ("identity_leak", "anomalous_voter"))
    assert arr.flag_bits.tolist() == [0, 0, leak, 0, anomalous]
    total, by_flag = arr.excluded(arr.anonymous)
    assert total == 2 and by_flag["identity_leak"] == 1 and by_flag["anomalous_voter"] == 1
    arr.mark(np.array([True, False, True, False, False]), "position_locked")
    total, by_flag = arr.excluded(arr.anonymous)
    assert total == 3 and by_flag["position_locked"] == 2 and by_flag["identity_leak"] == 1


def test_rebuild_from_arrays_matches_a_recount_and_reports_drift(arena):
    VoteCount.objects.filter(category="coding").delete()
    VoteCount.objects.filter(category="all").update(count=7)
    f.vote(f.battle(*arena[:2]), "a")
    truth = recount()
    report, by_cat = services.counts_rebuild_from(selectors.arena_vote_arrays())
    assert table() == truth
    assert report["votes"] == 3 and report["votes_drift"] > 0 and report["changed"] > 0
    assert {c: cc.total for c, cc in by_cat.items()} == {"all": 3, "coding": 1, "lang:de": 1}
    again, _ = services.counts_rebuild_from(selectors.arena_vote_arrays())
    assert again["votes_drift"] == 0 and again["changed"] == 0


def test_rebuild_catches_up_votes_cast_and_deleted_after_the_read(arena):
    a, b, _ = arena
    arrays = selectors.arena_vote_arrays()
    late = f.vote(f.battle(a, b, categories=["all", "coding"]), "b")  # counted by its increment
    Vote.objects.filter(pk=int(arrays.vote_id[1])).delete()  # read, then gone
    truth = recount()
    report, by_cat = services.counts_rebuild_from(arrays)
    assert report["caught_up"] == {"new": 1, "gone": 1}
    assert table() == truth
    assert by_cat["coding"].total == 2 and late.pk not in arrays.vote_id


def test_full_recompute_snapshots_carry_per_category_versions(arena):
    report = services.leaderboard_recompute_full()
    assert report["votes"] == 4  # anonymous ones
    versions = selectors.counts_versions()
    assert selectors.snapshot_versions() == versions == {"all": 2, "coding": 1, "lang:de": 1}
    assert services.leaderboard_refresh() == []  # nothing changed since


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_parallel_read_and_rebuild_under_concurrent_votes_on_postgresql():
    """The split read (several connections) plus catch-up count every vote exactly once."""
    models = [f.llm(f"m{i}") for i in range(4)]
    for k in range(60):
        f.vote(f.battle(models[k % 4], models[(k + 1) % 4], categories=["all", "coding"]), "a")
    extra = [f.battle(models[k % 4], models[(k + 2) % 4]) for k in range(40)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def voter() -> None:
        try:
            for bt in extra:
                with transaction.atomic():
                    counts_add_vote(Vote.objects.create(battle=bt, winner="b", voter="x", turns=1))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()
            connection.close()

    thread = threading.Thread(target=voter)
    thread.start()
    while not stop.is_set():
        services.leaderboard_recompute_full(detect_anomalies=False)
    thread.join()
    assert not errors
    assert table() == recount()
    # (no voter tests here: these synthetic voters always pick one side, which they would flag)
    assert services.leaderboard_recompute_full(detect_anomalies=False)["drift"]["votes_drift"] == 0
    arr = selectors.arena_vote_arrays()
    assert arr.size == 100 and np.all(np.diff(arr.vote_id) > 0)
