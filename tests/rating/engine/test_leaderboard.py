import json

import numpy as np
import pytest

from rating.engine import (
    SCALE,
    RatingError,
    StyleFeatures,
    UnknownOutcomeError,
    aggregate,
    leaderboard,
    rank_from_intervals,
)
from tests.rating.engine.sim import simulate_votes

NAMES = [f"model-{k}" for k in range(6)]


def _votes(seed: int = 0, n: int = 20_000):
    rng = np.random.default_rng(seed)
    theta = np.linspace(-1, 1, len(NAMES))
    return theta, *simulate_votes(theta, n, rng)


def test_leaderboard_rows_scores_intervals_and_default_mean():
    theta, a, b, o = _votes()
    board = leaderboard(NAMES, a, b, o)
    scores = {r.name: r for r in board.models}
    assert np.mean([r.score for r in board.models]) == pytest.approx(1000.0)
    assert board.models[0].name == "model-5"  # sorted best first
    for r in board.models:
        assert r.lower < r.score < r.upper
        assert r.votes == int(((a == r.index) | (b == r.index)).sum())
    spread = scores["model-5"].score - scores["model-0"].score
    assert spread == pytest.approx(SCALE * 2, abs=25)
    assert board.n_votes == a.size
    assert board.battle_counts.sum() == 2 * a.size


def test_anchor_fixes_one_model_and_translates_intervals():
    theta, a, b, o = _votes()
    plain = leaderboard(NAMES, a, b, o)
    anchored = leaderboard(NAMES, a, b, o, anchor=(2, 1114.0))
    rows = {r.index: r for r in anchored.models}
    base = {r.index: r for r in plain.models}
    shift = 1114.0 - base[2].score
    assert rows[2].score == pytest.approx(1114.0)
    for k in range(len(NAMES)):
        assert rows[k].score == pytest.approx(base[k].score + shift)
        assert rows[k].upper - rows[k].lower == pytest.approx(base[k].upper - base[k].lower)


def test_rank_is_one_plus_models_surely_better():
    lower = np.array([10.0, 5.0, 0.0, -20.0])
    upper = np.array([20.0, 15.0, 12.0, -1.0])
    assert rank_from_intervals(lower, upper).tolist() == [1, 1, 1, 4]


def test_bootstrap_and_sandwich_intervals_agree():
    theta, a, b, o = _votes(n=50_000)
    sand = {r.index: r for r in leaderboard(NAMES, a, b, o).models}
    boot = {r.index: r for r in leaderboard(NAMES, a, b, o, ci="bootstrap", seed=3).models}
    for k in sand:
        width_s = sand[k].upper - sand[k].lower
        width_b = boot[k].upper - boot[k].lower
        assert width_b == pytest.approx(width_s, rel=0.15)


def test_counts_input_equals_row_input():
    theta, a, b, o = _votes()
    from_rows = leaderboard(NAMES, a, b, o).to_dict()
    from_counts = leaderboard(NAMES, counts=aggregate(a, b, o, n_models=len(NAMES))).to_dict()
    assert from_rows == from_counts


def test_to_dict_is_plain_json_with_matrices():
    theta, a, b, o = _votes()
    data = leaderboard(NAMES, a, b, o, ties="davidson").to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    m = len(NAMES)
    assert len(data["predicted_win_rate"]) == m and data["predicted_win_rate"][0][0] is None
    assert data["observed_win_rate"][0][1] + data["observed_win_rate"][1][0] == pytest.approx(1)
    assert data["params"]["tie_param"] > 0
    assert data["method"]["anchor"] == {"mean": 1000.0}


def test_empty_data_gives_unrated_models_and_a_warning():
    board = leaderboard(NAMES, [], [], [])
    assert all(r.score is None and r.rank is None for r in board.models)
    assert board.n_votes == 0
    assert "no votes" in board.warnings[0]
    json.dumps(board.to_dict(), allow_nan=False)


def test_one_model_is_unrated():
    board = leaderboard(["solo"], [], [], [])
    assert board.models[0].score is None and board.models[0].votes == 0


def test_unknown_winner_label_error_names_the_row():
    with pytest.raises(UnknownOutcomeError, match="row 1: unknown winner label 'left'"):
        leaderboard(["x", "y"], [0, 1], [1, 0], ["model_a", "left"])


def test_bad_options_are_errors():
    theta, a, b, o = _votes(n=100)
    with pytest.raises(RatingError, match="interval method"):
        leaderboard(NAMES, a, b, o, ci="bayes")
    with pytest.raises(RatingError, match="style control supports"):
        leaderboard(
            NAMES,
            a,
            b,
            o,
            ci="bootstrap",
            style=StyleFeatures(np.ones((100, 4)), np.ones((100, 4))),
        )


def test_style_controlled_leaderboard_reports_coefficients():
    rng = np.random.default_rng(2)
    theta, a, b, o = _votes(n=5_000)
    fa, fb = rng.poisson(200, (a.size, 4)), rng.poisson(200, (a.size, 4))
    board = leaderboard(NAMES, a, b, o, style=StyleFeatures(fa, fb))
    style = board.params["style"]
    assert style["features"] == ["length", "headers", "lists", "bold"]
    assert all(
        lo < c < hi
        for lo, c, hi in zip(style["lower"], style["coefficients"], style["upper"], strict=True)
    )
    assert board.method["style_control"] is True
