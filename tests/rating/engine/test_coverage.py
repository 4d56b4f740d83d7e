"""Interval coverage over many simulated arenas (fixed seed, ~2400 intervals per method)."""

import numpy as np
from scipy.stats import norm

from rating.engine import aggregate, fit_bt, pair_table, sandwich_cov
from rating.engine.bootstrap import bootstrap_params
from tests.rating.engine.sim import simulate_votes

ARENAS, MODELS, VOTES = 120, 20, 6_000


def test_sandwich_and_bootstrap_intervals_cover_95_percent():
    rng = np.random.default_rng(2024)
    z = norm.ppf(0.975)
    hits = {"sandwich": 0, "bootstrap": 0}
    for arena in range(ARENAS):
        # Beta(1/2, 1/2) strengths as in the paper's simulation, spread over 3 log-odds.
        theta = 3 * rng.beta(0.5, 0.5, MODELS)
        truth = theta - theta.mean()
        # ties are 40% of close votes: a model-based (non-robust) SE would over-cover
        a, b, o = simulate_votes(theta, VOTES, rng, tie_share=0.4)
        table = pair_table(aggregate(a, b, o, n_models=MODELS))
        fit = fit_bt(table)
        se = np.sqrt(np.diag(sandwich_cov(table, fit)))
        hits["sandwich"] += int((np.abs(fit.theta - truth) <= z * se).sum())
        boot = bootstrap_params(table, fit, rounds=1000, seed=arena)
        lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
        hits["bootstrap"] += int(((lo <= truth) & (truth <= hi)).sum())
    total = ARENAS * MODELS
    for method, hit in hits.items():
        print(f"{method} coverage {hit / total:.4f} over {total} intervals")
        assert 0.93 <= hit / total <= 0.97, (method, hit / total)
