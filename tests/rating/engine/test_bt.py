import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from rating.engine import (
    SCALE,
    DisconnectedGraphError,
    RatingError,
    aggregate,
    fit_bt,
    pair_table,
    sandwich_cov,
)
from rating.engine.bootstrap import bootstrap_params
from tests.rating.engine.sim import simulate_votes


def test_fit_equals_unpenalised_logistic_regression_on_one_row_per_vote():
    rng = np.random.default_rng(3)
    m = 10
    theta = rng.normal(0, 1, m)
    a, b, o = simulate_votes(theta, 20_000, rng)
    fit = fit_bt(pair_table(aggregate(a, b, o, n_models=m)))

    # One row per decisive vote; a tie (or both bad) is one row per side with weight 1/2.
    x = np.zeros((a.size, m))
    x[np.arange(a.size), a] = 1.0
    x[np.arange(a.size), b] = -1.0
    y_a = np.select([o == 0, o == 1], [1.0, 0.0], 0.5)
    rows = np.concatenate([x, x])
    labels = np.concatenate([np.ones(a.size), np.zeros(a.size)])
    weights = np.concatenate([y_a, 1 - y_a])
    keep = weights > 0
    # C=inf is sklearn 1.8+ spelling of penalty=None (unpenalised)
    lr = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    lr.fit(rows[keep], labels[keep], sample_weight=weights[keep])
    reference = lr.coef_[0] - lr.coef_[0].mean()
    assert np.max(np.abs(SCALE * (fit.theta - reference))) < 0.1


def test_recovers_true_strengths_at_one_million_votes():
    rng = np.random.default_rng(4)
    theta = rng.normal(0, 1, 100)
    a, b, o = simulate_votes(theta, 1_000_000, rng, tie_share=0.15)
    fit = fit_bt(pair_table(aggregate(a, b, o, n_models=100)))
    assert spearmanr(fit.theta, theta).statistic >= 0.99
    assert np.max(np.abs(fit.theta - (theta - theta.mean()))) < 0.08


def test_ties_and_both_bad_count_half_a_win_each():
    tie = fit_bt(pair_table(aggregate([0, 0, 1, 0], [1, 1, 0, 1], [0, 2, 0, 1])))
    both_bad = fit_bt(pair_table(aggregate([0, 0, 1, 0], [1, 1, 0, 1], [0, 3, 0, 1])))
    # Model 0 scored 1 + 0.5 + 0 + 0 = 1.5 of 4 -> P(0 beats 1) = 0.375.
    for fit in (tie, both_bad):
        assert 1 / (1 + np.exp(-(fit.theta[0] - fit.theta[1]))) == pytest.approx(0.375)


def test_weights_scale_votes():
    heavy = fit_bt(pair_table(aggregate([0, 0], [1, 1], [0, 1], weights=[3.0, 1.0])))
    assert heavy.theta[0] - heavy.theta[1] == pytest.approx(np.log(3.0))


@pytest.mark.parametrize("ties", ["davidson", "rao-kupper"])
def test_tie_models_recover_their_tie_parameter(ties):
    rng = np.random.default_rng(5)
    m, n = 8, 200_000
    theta = rng.normal(0, 0.7, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = theta[a] - theta[b]
    if ties == "davidson":
        nu = 0.8
        z = np.exp(d / 2) + np.exp(-d / 2) + nu
        p_a, p_t = np.exp(d / 2) / z, nu / z
        true_param = nu
    else:
        eta = 0.4
        p_a = 1 / (1 + np.exp(-(d - eta)))
        p_t = 1 - p_a - 1 / (1 + np.exp(d + eta))
        true_param = eta
    u = rng.random(n)
    o = np.where(u < p_a, 0, np.where(u < p_a + p_t, 2, 1))
    table = pair_table(aggregate(a, b, o, n_models=m))
    fit = fit_bt(table, ties=ties)
    assert fit.converged
    assert fit.tie_param == pytest.approx(true_param, rel=0.03)
    assert np.max(np.abs(fit.theta - (theta - theta.mean()))) < 0.03
    se = np.sqrt(np.diag(sandwich_cov(table, fit)))
    boot = bootstrap_params(table, fit, rounds=200, seed=1)
    assert np.allclose(boot.std(axis=0), se, rtol=0.25)


def test_unknown_tie_model_and_tie_model_without_ties_are_errors():
    table = pair_table(aggregate([0, 1], [1, 0], [0, 0]))
    with pytest.raises(RatingError, match="unknown tie model"):
        fit_bt(table, ties="glicko")
    with pytest.raises(RatingError, match="needs at least one tie"):
        fit_bt(table, ties="davidson")


def test_model_that_never_lost_gets_finite_regularised_score():
    fit = fit_bt(pair_table(aggregate([0, 0, 1, 2], [1, 2, 2, 1], [0, 0, 0, 0])))
    assert fit.ridge > 0
    assert np.all(np.isfinite(fit.theta))
    assert fit.theta[0] == max(fit.theta)


def test_gaussian_and_exact_bootstrap_agree():
    rng = np.random.default_rng(6)
    theta = rng.normal(0, 1, 15)
    a, b, o = simulate_votes(theta, 30_000, rng)
    table = pair_table(aggregate(a, b, o, n_models=15))
    fit = fit_bt(table)
    exact = bootstrap_params(table, fit, rounds=1000, sampler="multinomial").std(axis=0)
    gauss = bootstrap_params(table, fit, rounds=1000, sampler="gaussian").std(axis=0)
    assert np.allclose(exact, gauss, rtol=0.1)


def test_disconnected_table_raises_with_component_labels():
    table = pair_table(aggregate([0, 1, 2, 3], [1, 0, 3, 2], [0, 0, 0, 0]))
    with pytest.raises(DisconnectedGraphError) as info:
        fit_bt(table)
    assert info.value.components.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
