"""Boards researchers can trust, end to end: withheld and provisional boards in the page and the
API, the tie model shown, excluded votes split by reason, position-locked voters flagged."""

import random
import uuid

import pytest
from rest_framework.test import APIClient

from arena.models import Vote
from rating import selectors, services
from tests.rating import factories as f


def _nineteen_votes_with_one_unbeaten_model():
    """The researcher's case: 19 votes between 5 models, alpha never lost."""
    models = [f.llm(slug) for slug in ("alpha", "beta", "gamma", "delta", "eps")]
    rng = random.Random(19)
    for k in range(19):
        a, b = rng.sample(models, 2)
        winner = rng.choice(["a", "b", "a", "b", "tie"])
        if models[0] in (a, b):
            winner = "a" if a == models[0] else "b"
        features = ((rng.randint(50, 900), k % 3, k % 5, k % 2), (rng.randint(50, 900), 1, 0, 0))
        f.vote(f.battle(a, b, voter=f"v{k}", features=features), winner)
    return models


@pytest.fixture
def small_arena(db):
    _nineteen_votes_with_one_unbeaten_model()
    services.leaderboard_recompute_full(detect_anomalies=False)


def test_the_19_vote_style_board_is_withheld_in_the_snapshot_page_and_api(client, small_arena):
    snap = selectors.snapshot_latest(style_control=True)
    status = snap.status
    assert status["status"] == "withheld" and status["needed_votes"] == 80
    assert status["reason"].startswith("not enough votes for a style-controlled board: ")
    assert status["reason"].endswith(
        "needs 80 (10 per parameter: 4 model strengths + 4 style coefficients)"
    )
    assert all(r["score"] is None and r["rank"] is None for r in snap.rows)
    assert snap.params["fitted"]["style"] is None  # no coefficient of a fit never made

    html = client.get("/leaderboard/?style=1").content.decode()
    assert "Not enough votes for a style-controlled board" in html
    assert "needs 80 (10 per parameter" in html
    assert "<table" not in html and "Style coefficients" not in html

    body = APIClient().get("/api/v1/leaderboard/?style_control=true").json()
    assert body["status"]["status"] == "withheld" and body["status"]["needed_votes"] == 80
    assert all(row["score"] is None for row in body["rows"])
    assert body["warnings"][0] == body["status"]["reason"]
    csv = APIClient().get("/api/v1/leaderboard/csv/?style_control=true")
    assert csv["X-Leaderboard-Status"] == "withheld"


def test_the_small_plain_board_is_provisional_with_its_prior_stated(client, small_arena):
    snap = selectors.snapshot_latest()
    assert snap.status["status"] == "regularised" and snap.status["prior_sd"] == 1.0
    assert snap.status["intervals"] == "posterior"
    assert all(r["lower"] < r["score"] < r["upper"] for r in snap.rows)
    html = client.get("/leaderboard/").content.decode()
    assert "Provisional: only" in html and "Gaussian prior (sd 1 log-odds = 174 points)" in html
    assert html.count("Provisional: only") == 1  # the reason is not repeated as a warning
    body = APIClient().get("/api/v1/leaderboard/").json()
    assert body["status"]["status"] == "regularised" and body["status"]["intervals"] == "posterior"


def test_every_board_names_its_tie_model(client, small_arena):
    body = APIClient().get("/api/v1/leaderboard/").json()
    assert body["tie_model"] == "half"
    assert "half a win for each side" in body["tie_model_meaning"]
    html = client.get("/leaderboard/").content.decode()
    assert "ties: half a win each" in html
    assert "are a different quantity" in html


def test_a_board_whose_votes_are_all_ties_is_withheld(client, db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "tie", 5)
    f.votes(b, c, "both_bad", 5)
    services.leaderboard_refresh()
    snap = selectors.snapshot_latest()
    assert (
        snap.status["status"] == "withheld"
        and "every counted vote is a tie" in snap.status["reason"]
    )
    assert all(r["score"] is None for r in snap.rows)
    html = client.get("/leaderboard/").content.decode()
    assert "No scores for Overall yet" in html and "<table" not in html


def test_a_disconnected_category_rates_its_largest_group_only(db):
    a, b, c, d = (f.llm(s) for s in ("alpha", "beta", "gamma", "delta"))
    f.votes(a, b, "a", 12, categories=["all", "coding"])
    f.votes(b, a, "a", 10, categories=["all", "coding"])
    f.votes(c, d, "a", 2, categories=["all", "coding"])
    services.leaderboard_refresh()
    rows = {r["model"]: r for r in selectors.snapshot_latest(category="coding").rows}
    assert rows["alpha"]["score"] is not None and rows["gamma"]["score"] is None
    warnings = selectors.snapshot_latest(category="coding").warnings
    assert any("gamma, delta have votes only among themselves" in w for w in warnings)


def test_excluded_votes_are_split_by_reason_in_the_page_and_the_api(client, db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "a", 15)
    f.votes(b, c, "a", 15)
    f.votes(c, a, "b", 15)
    f.votes(a, b, "b", 3, flags=["identity_leak"])
    f.votes(a, c, "a", 2, flags=["anomalous_voter"])
    f.votes(b, c, "b", 1, flags=["identity_leak", "errored_round"])
    services.leaderboard_refresh()
    snap = selectors.snapshot_latest()
    assert snap.flagged_excluded == 6
    assert snap.excluded == {
        "total": 6,
        "by_reason": {
            "identity_leak": 4, "anomalous_voter": 2, "errored_round": 1, "moderated": 0,
            "position_locked": 0,
        },
    }  # fmt: skip
    html = client.get("/leaderboard/").content.decode()
    assert "6 flagged votes excluded (identity leak 4, anomalous voter 2, errored round 1)" in html
    body = APIClient().get("/api/v1/leaderboard/").json()
    assert body["excluded"]["total"] == 6 and body["excluded"]["by_reason"]["identity_leak"] == 4
    services.leaderboard_recompute_full(detect_anomalies=False)
    assert selectors.snapshot_latest().excluded == snap.excluded  # the same in both paths


def _battle_with_random_sides(models, rng, voter):
    a, b = rng.sample(models, 2)
    return f.battle(a, b, voter=voter), a, b


@pytest.fixture
def voters(db):
    """Ten honest voters (the stronger model wins 80% of the time, sides random) and one who
    always clicks A, 30 votes each."""
    models = [f.llm(f"m{k}") for k in range(5)]
    strength = {m.pk: k for k, m in enumerate(models)}
    rng = random.Random(5)
    for v in range(11):
        name = "clicker" if v == 10 else f"honest-{v}-{uuid.uuid4().hex[:6]}"
        for _ in range(30):
            bt, a, b = _battle_with_random_sides(models, rng, name)
            if name == "clicker":
                winner = "a"
            else:
                better = "a" if strength[a.pk] > strength[b.pk] else "b"
                worse = "b" if better == "a" else "a"
                winner = rng.choices([better, worse, "tie"], [0.7, 0.2, 0.1])[0]
            f.vote(bt, winner)
    return models


def test_full_recompute_flags_an_always_a_voter_and_not_honest_ones(voters):
    report = services.leaderboard_recompute_full()
    assert report["newly_flagged_by_reason"]["position_locked"] == 30
    locked = Vote.objects.filter(flags__isnull=False).exclude(flags=[])
    assert {v.voter for v in locked} == {"clicker"}
    assert all(v.flags == ["position_locked"] for v in locked)
    snap = selectors.snapshot_latest()
    assert snap.votes_counted == 300 and snap.excluded["by_reason"]["position_locked"] == 30
    # Idempotent: the next run flags nothing new.
    assert services.leaderboard_recompute_full()["newly_flagged"] == 0


def test_position_test_is_off_with_the_other_anomaly_tests(voters):
    report = services.leaderboard_recompute_full(detect_anomalies=False)
    assert report["newly_flagged"] == 0
    assert not Vote.objects.exclude(flags=[]).exists()
