"""Benchmark: votes needed to reach a target max 95% interval width, active vs uniform pairs.

Simulated arena with known BT strengths. Both strategies start from the same warm-up (a few
votes on every pair), then add votes in batches: uniform draws pairs uniformly, active draws
them from `active_sampling_weights` recomputed after every batch (the paper's proportional rule,
sharpness 1, and a sharpened variant, sharpness 4). After each batch the BT fit
and sandwich intervals are recomputed; a run stops when the widest interval is at most
--target rating points. Reports medians over --runs seeds and the ratio.

    .venv/bin/python bench/active_sampling.py            # 20 models, 10 runs (~1 min)
    .venv/bin/python bench/active_sampling.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rating.engine import (  # noqa: E402
    SCALE,
    active_sampling_weights,
    aggregate,
    fit_bt,
    pair_table,
    sandwich_cov,
)

Z = float(norm.ppf(0.975))


def play(theta: NDArray, a: NDArray, b: NDArray, rng: np.random.Generator) -> NDArray:
    """Outcomes with 20% of close votes tied, E[score] = sigmoid(d) (half-win BT holds)."""
    p = 1 / (1 + np.exp(-(theta[a] - theta[b])))
    tie = 0.2 * 2 * np.minimum(p, 1 - p)
    u = rng.random(a.size)
    return np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))


def run(theta: NDArray, strategy: str, target: float, batch: int, warmup: int, seed: int) -> int:
    """Votes used until the widest 95% interval (in rating points) is <= target."""
    rng = np.random.default_rng(seed)
    m = theta.size
    ii, jj = np.triu_indices(m, 1)
    a = np.repeat(ii, warmup)
    b = np.repeat(jj, warmup)
    o = play(theta, a, b, rng)
    while True:
        table = pair_table(aggregate(a, b, o, n_models=m))
        fit = fit_bt(table)
        se = np.sqrt(np.diag(sandwich_cov(table, fit)))
        if 2 * Z * SCALE * se.max() <= target or a.size > 2_000_000:
            return int(a.size)
        if strategy.startswith("active"):
            sharp = float(strategy.split("=")[1]) if "=" in strategy else 1.0
            weights = active_sampling_weights(table, fit.theta, sharpness=sharp).weight
        else:
            weights = np.full(ii.size, 1.0 / ii.size)
        pick = rng.choice(ii.size, size=batch, p=weights)
        swap = rng.random(batch) < 0.5  # random left/right position
        na = np.where(swap, jj[pick], ii[pick])
        nb = np.where(swap, ii[pick], jj[pick])
        a, b = np.r_[a, na], np.r_[b, nb]
        o = np.r_[o, play(theta, na, nb, rng)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--spread", type=float, default=1.5, help="sd of true log-odds strengths")
    parser.add_argument("--target", type=float, default=60.0, help="max 95%% CI width, points")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="initial votes per pair")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 runs, target 100 points")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.target = 3, 100.0
    start = time.perf_counter()
    used: dict[str, list[int]] = {"uniform": [], "active": [], "active sharpness=4": []}
    for r in range(args.runs):
        theta = np.random.default_rng(1000 + r).normal(0, args.spread, args.models)
        for strategy in used:
            used[strategy].append(run(theta, strategy, args.target, args.batch, args.warmup, r))
    print(
        f"{args.models} models, strengths N(0, {args.spread}^2) log-odds, target max 95% CI "
        f"width {args.target:g} points, batches of {args.batch}, {args.runs} runs"
    )
    for strategy, votes in used.items():
        print(f"{strategy:19s} median votes {statistics.median(votes):>9,.0f}   runs {votes}")
    uni = statistics.median(used["uniform"])
    for strategy in ("active", "active sharpness=4"):
        act = statistics.median(used[strategy])
        print(f"{strategy} / uniform = {act / uni:.3f}  ({1 - act / uni:.1%} fewer votes)")
    print(f"elapsed {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
