import numpy as np

from rating.engine import active_sampling_weights, aggregate, fit_bt, pair_table, sandwich_cov


def test_active_sampling_favours_pairs_with_the_widest_intervals():
    rng = np.random.default_rng(0)
    m = 10
    theta = rng.normal(0, 0.5, m)
    ii, jj = np.triu_indices(m, 1)
    per_pair = np.where(jj == m - 1, 5, 300)  # the last model has few votes
    a = np.repeat(ii, per_pair)
    b = np.repeat(jj, per_pair)
    p = 1 / (1 + np.exp(-(theta[a] - theta[b])))
    o = np.where(rng.random(a.size) < p, 0, 1)
    table = pair_table(aggregate(a, b, o, n_models=m))
    fit = fit_bt(table)
    se = np.sqrt(np.diag(sandwich_cov(table, fit)))
    assert np.argmax(se) == m - 1
    weights = active_sampling_weights(table, fit.theta)
    assert abs(weights.weight.sum() - 1) < 1e-12
    involves_last = weights.j == m - 1
    assert weights.weight[involves_last].sum() > 0.6  # 9 of 45 pairs: uniform would be 0.2
    assert involves_last[np.argmax(weights.weight)]
    assert abs(weights.as_matrix(m).sum() - 1) < 1e-12


def test_unrated_model_gets_the_most_weight():
    table = pair_table(aggregate([0, 1, 0, 1], [1, 0, 1, 2], [0, 0, 1, 1], n_models=4))
    weights = active_sampling_weights(table, np.array([0.1, -0.1, 0.0, np.nan]))
    top = np.argmax(weights.weight)
    assert 3 in (weights.i[top], weights.j[top])
