"""Small or degenerate data: every board is trusted, regularised with its prior stated, or
withheld with its reason; never a number that cannot be trusted."""

import json

import numpy as np
import pytest

from rating.engine import StyleFeatures, aggregate, fit_bt, leaderboard, pair_table
from rating.engine import fitting as fitting_module
from rating.engine.bt import BTFit
from rating.engine.quality import EVENTS_PER_PARAMETER, PRIOR_SD, needed_decisive_votes
from rating.engine.style import normalise_style
from tests.rating.engine.sim import simulate_votes

NAMES = ["alpha", "beta", "gamma", "delta", "eps"]


def _style_rows(n: int, seed: int, m: int = 5):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    fa = rng.poisson([400, 2, 5, 3], (n, 4)).astype(np.float64)
    fb = rng.poisson([400, 2, 5, 3], (n, 4)).astype(np.float64)
    return rng, a, b, StyleFeatures(fa, fb)


def _assert_no_numbers(board) -> None:
    assert all(r.score is None and r.lower is None and r.rank is None for r in board.models)
    assert np.isnan(board.predicted_win_rate).all()
    json.dumps(board.to_dict(), allow_nan=False)


def test_the_19_vote_style_board_is_withheld_with_what_it_needs():
    """The researcher's case: 19 votes, 5 models, one of them never lost. The old fit ran off
    to scores of +-70,000 with a non-converged fit and no warning."""
    rng, a, b, style = _style_rows(19, seed=11)
    o = rng.choice([0, 1, 2], 19, p=[0.45, 0.45, 0.1])
    o[a == 0], o[b == 0] = 0, 1  # alpha never lost
    board = leaderboard(NAMES, a, b, o, style=style)
    status = board.status
    assert status.status == "withheld" and not status.has_scores
    decisive = int(np.isin(o, (0, 1)).sum())
    needed = EVENTS_PER_PARAMETER * (len(NAMES) - 1 + 4)
    assert status.decisive_votes == decisive and status.needed_votes == needed == 80
    assert status.reason == (
        f"not enough votes for a style-controlled board: {decisive} decisive votes, needs 80 "
        "(10 per parameter: 4 model strengths + 4 style coefficients)"
    )
    assert board.warnings[0] == status.reason  # whoever reads only the warnings sees it
    _assert_no_numbers(board)
    assert board.to_dict()["status"]["status"] == "withheld"


def test_style_board_with_enough_votes_is_fitted():
    rng, a, b, style = _style_rows(3000, seed=2)
    theta = np.linspace(-1, 1, 5)
    o = np.where(rng.random(a.size) < 1 / (1 + np.exp(-(theta[a] - theta[b]))), 0, 1)
    board = leaderboard(NAMES, a, b, o, style=style)
    assert board.status.status == "ok" and board.status.intervals == "sandwich"
    assert board.params["converged"] is True and board.params["style"]["converged"] is True
    assert all(r.lower < r.score < r.upper for r in board.models)
    assert board.warnings == []


def test_style_board_separated_by_a_style_feature_did_not_converge_and_is_withheld():
    """Every vote goes to the longer answer: the length coefficient has no finite MLE."""
    rng, a, b, style = _style_rows(400, seed=3)
    z, _, _ = normalise_style(style.features_a, style.features_b)
    o = np.where(z[:, 0] > 0, 0, 1)
    assert fit_bt(pair_table(aggregate(a, b, o, n_models=5))).converged  # plain BT is fine
    board = leaderboard(NAMES, a, b, o, style=style)
    assert board.status.status == "withheld"
    assert "style-controlled fit did not converge" in board.status.reason
    assert board.params["converged"] is False
    assert board.params["style"] == {"features": list(style.names), "converged": False}
    _assert_no_numbers(board)


def test_style_board_where_a_model_never_lost_is_withheld():
    rng, a, b, style = _style_rows(2000, seed=4)
    o = rng.choice([0, 1], a.size)
    o[a == 0], o[b == 0] = 0, 1
    board = leaderboard(NAMES, a, b, o, style=style)
    assert board.status.status == "withheld" and "never lost or never won" in board.status.reason
    _assert_no_numbers(board)


def test_few_votes_give_a_regularised_board_with_the_prior_stated():
    rng = np.random.default_rng(5)
    a, b, o = simulate_votes(np.linspace(-0.5, 0.5, 5), 25, rng)
    board = leaderboard(NAMES, a, b, o, ci="bootstrap")
    status = board.status
    assert status.status == "regularised" and status.has_scores
    assert status.prior_sd == PRIOR_SD and status.intervals == "posterior"
    assert status.needed_votes == needed_decisive_votes(5) == 40
    assert "an unregularised fit needs 40" in status.reason and "sd 1 log-odds" in status.reason
    for r in board.models:
        assert r.lower < r.score < r.upper
        assert r.upper - r.lower > 200  # a handful of votes leave a wide interval
        assert abs(r.score - 1000) < 400  # shrunk towards the mean


def test_a_model_that_never_lost_gets_an_honest_interval():
    """a beat b 3 times, b beat c 3 times. The old board: a = 1737 +- 120 (ridge fit, sandwich
    intervals collapsing at the nearly separated fit)."""
    board = leaderboard(["a", "b", "c"], [0, 0, 0, 1, 1, 1], [1, 1, 1, 2, 2, 2], ["model_a"] * 6)
    status = board.status
    assert status.status == "regularised"
    assert "never lost or never won against the rest (a, c)" in status.reason
    rows = {r.name: r for r in board.models}
    assert rows["a"].score > rows["b"].score > rows["c"].score
    assert rows["a"].upper - rows["a"].lower > 300
    assert all(r.rank == 1 for r in board.models)  # the intervals overlap: nothing is sure


def test_enough_votes_give_the_unregularised_fit():
    rng = np.random.default_rng(6)
    a, b, o = simulate_votes(np.linspace(-1, 1, 5), 2000, rng)
    board = leaderboard(NAMES, a, b, o)
    assert board.status.status == "ok" and board.status.reason is None
    assert board.status.intervals == "sandwich" and board.status.prior_sd is None
    boot = leaderboard(NAMES, a, b, o, ci="bootstrap", bootstrap_rounds=100)
    assert boot.status.intervals == "bootstrap"


def test_all_ties_are_withheld():
    board = leaderboard(["a", "b", "c"], [0, 1, 2, 0] * 10, [1, 2, 0, 2] * 10, ["tie"] * 40)
    assert (
        board.status.status == "withheld" and "every counted vote is a tie" in board.status.reason
    )
    _assert_no_numbers(board)
    both_bad = leaderboard(["a", "b"], [0, 1], [1, 0], ["tie (bothbad)", "tie"])
    assert both_bad.status.status == "withheld"


@pytest.mark.parametrize("names", [["solo"], ["a", "b"]])
def test_one_model_or_no_votes_is_empty(names):
    board = leaderboard(names, [], [], [])
    assert board.status.status == "empty" and board.warnings == ["no votes: no model can be rated"]
    _assert_no_numbers(board)


def test_disconnected_graph_rates_only_the_largest_group():
    rng = np.random.default_rng(7)
    a, b, o = simulate_votes(np.linspace(-1, 1, 3), 600, rng)  # models 0-2: the main group
    a = np.concatenate([a, [3, 4, 3]])
    b = np.concatenate([b, [4, 3, 4]])
    o = np.concatenate([o, [0, 0, 1]])  # models 3, 4 only met each other
    board = leaderboard(["a", "b", "c", "d", "e", "f"], a, b, o)
    rows = {r.name: r for r in board.models}
    assert all(rows[n].score is not None and rows[n].component == 0 for n in "abc")
    assert rows["d"].score is None and rows["e"].score is None and rows["d"].component > 0
    assert rows["f"].score is None and rows["f"].votes == 0
    assert any("d, e have votes only among themselves" in w for w in board.warnings)
    assert any("(no votes): f" in w for w in board.warnings)
    assert np.mean([rows[n].score for n in "abc"]) == pytest.approx(1000)
    assert np.isnan(board.predicted_win_rate[0, 3])


def test_a_fit_that_did_not_converge_is_withheld(monkeypatch):
    def stuck(table, **kwargs):
        return BTFit(np.zeros(table.n_models), None, "half", 0.0, 200, False, -1.0)

    monkeypatch.setattr(fitting_module, "fit_bt", stuck)
    rng = np.random.default_rng(8)
    a, b, o = simulate_votes(np.linspace(-1, 1, 3), 600, rng)
    board = leaderboard(["a", "b", "c"], a, b, o)
    assert board.status.status == "withheld" and board.params["converged"] is False
    assert board.status.reason == (
        "the Bradley-Terry fit did not converge in 200 iterations; no scores are shown"
    )
    _assert_no_numbers(board)


def test_the_board_says_which_tie_model_it_uses():
    rng = np.random.default_rng(9)
    a, b, o = simulate_votes(np.linspace(-1, 1, 3), 600, rng)
    half = leaderboard(["a", "b", "c"], a, b, o).method
    assert half["ties"] == "half" and "half a win for each side" in half["ties_meaning"]
    davidson = leaderboard(["a", "b", "c"], a, b, o, ties="davidson").method
    assert davidson["ties"] == "davidson" and "Davidson" in davidson["ties_meaning"]


def test_half_win_and_davidson_strengths_are_different_quantities():
    """With ~35% Davidson ties the half-win strengths are compressed towards 0, so they miss
    the Davidson truth by more than their intervals allow; Davidson's recover it."""
    rng = np.random.default_rng(11)
    m, n, nu = 6, 60_000, 1.2
    theta = np.linspace(-1, 1, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = theta[a] - theta[b]
    z = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(n)
    o = np.where(u < np.exp(d / 2) / z, 0, np.where(u < (np.exp(d / 2) + nu) / z, 2, 1))
    assert 0.3 < (o == 2).mean() < 0.4
    names = [f"m{k}" for k in range(m)]
    truth = 1000 + 400 / np.log(10) * (theta - theta.mean())

    def fitted(ties: str) -> tuple[float, float]:
        """(share of intervals covering the truth, fitted spread of the scores)"""
        rows = sorted(leaderboard(names, a, b, o, ties=ties).models, key=lambda r: r.index)
        cover = float(np.mean([r.lower <= truth[r.index] <= r.upper for r in rows]))
        return cover, rows[-1].score - rows[0].score

    spread = truth[-1] - truth[0]
    cover, davidson = fitted("davidson")
    assert cover == 1.0 and davidson == pytest.approx(spread, rel=0.05)
    cover, half = fitted("half")
    assert cover <= 0.5 and half < 0.7 * spread  # compressed: another quantity
