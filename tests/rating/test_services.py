"""Snapshots from the live refresh, the periodic task and the full recompute."""

import pytest

from arena.models import PairSamplingWeight, Vote, VoteCount
from rating import selectors, services, tasks
from rating.models import LeaderboardSnapshot
from tests.rating import factories as f


@pytest.fixture
def arena_votes(db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "a", 6, categories=["all", "coding"])
    f.votes(b, a, "a", 2, categories=["all", "coding"])
    f.votes(b, c, "a", 5, categories=["all", "lang:de"])
    f.votes(c, b, "tie", 2)
    f.votes(a, c, "b", 2)
    f.votes(a, c, "a", 3, flags=["identity_leak"], categories=["all", "coding"])
    return a, b, c


def test_refresh_task_writes_a_snapshot_per_category(arena_votes):
    assert tasks.refresh.apply().get() == 3
    snap = selectors.snapshot_latest()
    assert snap is not None and snap.trigger == "live" and not snap.style_control
    assert snap.votes_counted == 17
    assert [r["model"] for r in snap.rows][0] in {"alpha", "beta"}
    assert {r["model"] for r in snap.rows} == {"alpha", "beta", "gamma"}
    assert all(r["lower"] < r["score"] < r["upper"] for r in snap.rows)
    assert snap.matrices["models"] == [r["model"] for r in snap.rows]
    assert selectors.snapshot_categories() == ["all", "coding", "lang:de"]
    assert selectors.snapshot_latest(category="coding").votes_counted == 8


def test_flagged_votes_are_excluded_and_their_count_is_kept(arena_votes):
    services.leaderboard_refresh()
    assert selectors.snapshot_latest().flagged_excluded == 3
    assert selectors.snapshot_latest(category="coding").flagged_excluded == 3
    assert selectors.snapshot_latest(category="lang:de").flagged_excluded == 0


def test_refresh_does_nothing_until_a_new_vote_is_counted(arena_votes):
    a, b, _ = arena_votes
    assert services.leaderboard_refresh()
    assert services.leaderboard_refresh() == []
    f.vote(f.battle(a, b), "b")
    written = services.leaderboard_refresh()
    # Only the categories the new vote counts in are refitted (here "all").
    assert {s.category for s in written} == {"all"}
    assert selectors.snapshot_latest().votes_counted == 18
    assert selectors.snapshot_latest(category="coding").votes_counted == 8
    f.vote(f.battle(a, b, categories=["all", "coding"]), "a")
    written = services.leaderboard_refresh()
    assert {s.category for s in written} == {"all", "coding"}
    assert selectors.snapshot_latest(category="coding").votes_counted == 9
    assert services.leaderboard_refresh(force=True)


def test_empty_arena_gets_an_empty_overall_snapshot_once(db):
    assert len(services.leaderboard_refresh()) == 1
    snap = selectors.snapshot_latest()
    assert snap.is_empty and snap.rows == []
    assert services.leaderboard_refresh() == []


def test_full_recompute_writes_plain_and_style_boards_and_sampling_weights(arena_votes):
    VoteCount.objects.filter(category="all").update(count=99)  # drift to be repaired
    report = tasks.recompute_full.apply().get()
    assert report["drift"]["votes_drift"] > 0
    assert report["categories"] == ["all", "coding", "lang:de"]
    plain = selectors.snapshot_latest()
    styled = selectors.snapshot_latest(style_control=True)
    assert plain.trigger == styled.trigger == "full"
    assert plain.votes_counted == styled.votes_counted == 17
    # 15 decisive votes: a style-controlled board of 3 models needs 10 * (2 + 4) = 60
    assert styled.params["status"]["status"] == "withheld"
    assert "15 decisive votes, needs 60" in styled.params["status"]["reason"]
    assert all(r["score"] is None for r in styled.rows)
    assert plain.params["status"]["status"] == "regularised"  # 15 < 10 * 2 = 20
    assert PairSamplingWeight.objects.count() == 3
    total = sum(PairSamplingWeight.objects.values_list("weight", flat=True))
    assert total == pytest.approx(1.0)


def test_full_recompute_flags_an_anomalous_voter_and_drops_their_votes(db, settings):
    settings.RATING_ANOMALY_ALPHA = 0.1
    models = [f.llm(f"m{i}") for i in range(2)]
    a, b = models
    f.votes(a, b, "a", 60)  # the crowd: a beats b
    troll = [f.vote(f.battle(a, b, voter="troll"), "b") for _ in range(40)]
    report = services.leaderboard_recompute_full()
    assert report["newly_flagged"] == 40
    assert all("anomalous_voter" in v.flags for v in Vote.objects.filter(voter="troll"))
    snap = selectors.snapshot_latest()
    assert snap.votes_counted == 60 and snap.flagged_excluded == len(troll)


def test_snapshots_history_is_bounded(arena_votes):
    a, b, _ = arena_votes
    for _ in range(services.KEEP_SNAPSHOTS + 3):
        f.vote(f.battle(a, b), "a")
        services.leaderboard_refresh()
    n = LeaderboardSnapshot.objects.filter(category="all", style_control=False).count()
    assert n == services.KEEP_SNAPSHOTS


def test_periodic_jobs_are_registered():
    from core.background import periodic_jobs

    names = {job.task_name: job.every for job in periodic_jobs()}
    assert names["rating.refresh"] <= 3
    assert names["rating.recompute_full"] >= 60
