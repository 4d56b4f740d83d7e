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


def test_battles_shown_count_even_when_their_votes_were_excluded():
    """Model 3's votes were all excluded: by its counted votes it looks unmeasured; by the
    battles it was shown in, it is measured like the others."""
    m = 4
    ii, jj = np.triu_indices(m, 1)
    keep = jj != 3
    counted = pair_table(
        aggregate(np.repeat(ii[keep], 50), np.repeat(jj[keep], 50), [0, 1] * 75, n_models=m)
    )
    theta = np.zeros(m)
    by_votes = active_sampling_weights(counted, theta)
    by_battles = active_sampling_weights(counted, theta, shown=(ii, jj, np.full(ii.size, 50)))
    with_three = (by_votes.i == 3) | (by_votes.j == 3)
    assert by_votes.weight[with_three].sum() > 0.99
    assert np.allclose(by_battles.weight, 1 / ii.size)
