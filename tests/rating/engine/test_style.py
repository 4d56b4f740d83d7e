import numpy as np
import pytest

from rating.engine import StyleFeatures, aggregate, fit_bt, fit_style, pair_table
from rating.engine.style import normalise_style


def _verbose_arena(seed: int, n: int = 200_000, effect: float = 0.5):
    """Strong models are also verbose; voters reward length by `effect` per SD."""
    rng = np.random.default_rng(seed)
    m = 12
    theta = rng.normal(0, 0.6, m)
    verbosity = 300 + 150 * np.argsort(np.argsort(theta))  # monotone in strength
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    fa = np.zeros((n, 4))
    fb = np.zeros((n, 4))
    # lengths vary a lot within a model too, so length and identity are separable
    fa[:, 0] = np.round(verbosity[a] * rng.lognormal(0, 0.6, n))
    fb[:, 0] = np.round(verbosity[b] * rng.lognormal(0, 0.6, n))
    fa[:, 1:] = rng.poisson(3, (n, 3))
    fb[:, 1:] = rng.poisson(3, (n, 3))
    z, _, _ = normalise_style(fa, fb)
    p = 1 / (1 + np.exp(-(theta[a] - theta[b] + effect * z[:, 0])))
    o = np.where(rng.random(n) < p, 0, 1)
    return m, theta - theta.mean(), a, b, o, StyleFeatures(fa, fb)


def test_style_control_recovers_planted_length_effect():
    m, truth, a, b, o, style = _verbose_arena(7)
    fit = fit_style(a, b, o, style, n_models=m)
    se = np.sqrt(np.diag(fit.cov))
    assert fit.converged
    assert fit.beta[0] == pytest.approx(0.5, abs=0.03)
    assert abs(fit.beta[0] - 0.5) <= 2.5 * se[m]
    assert np.all(np.abs(fit.beta[1:]) < 0.03)  # no planted effect on markdown
    assert np.max(np.abs(fit.theta - truth)) < 0.05
    # Without control, verbose (strong) models are over-rated.
    plain = fit_bt(pair_table(aggregate(a, b, o, n_models=m)))
    assert np.max(np.abs(plain.theta - truth)) > 0.2


def test_normalisation_is_ratio_then_zscore():
    z, mean, std = normalise_style([[3.0], [0.0]], [[0.0], [1.0]])
    ratio = np.array([3 / 4, -1 / 2])
    assert mean[0] == pytest.approx(ratio.mean())
    assert np.allclose(z[:, 0], (ratio - ratio.mean()) / ratio.std())


def test_constant_feature_is_dropped_with_zero_coefficient():
    rng = np.random.default_rng(1)
    n = 2000
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(1, 3, n)) % 3
    fa = np.column_stack([rng.poisson(100, n), np.zeros(n)])
    fb = np.column_stack([rng.poisson(100, n), np.zeros(n)])
    fit = fit_style(a, b, rng.integers(0, 3, n), StyleFeatures(fa, fb, ("length", "x")), n_models=3)
    assert fit.beta[1] == 0.0 and fit.cov[4, 4] == 0.0
