"""Benchmark: BT point fit + 1000 bootstrap rounds + sandwich, and style control.

Ours: rating.engine on aggregated counts. Baseline: the original Chatbot Arena approach,
sklearn LogisticRegression (unpenalised, no intercept) on one row per vote (a tie is two rows
of weight 1/2, i.e. half a win each), bootstrap by resampling rows and refitting; its 1000
rounds are extrapolated from a few timed rounds. Times are medians over --repeats runs.

    .venv/bin/python bench/rating.py            # 1M/100 and 5M/300 (a few minutes)
    .venv/bin/python bench/rating.py --quick    # 100k/20, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rating.engine import (  # noqa: E402
    StyleFeatures,
    aggregate,
    fit_bt,
    fit_style,
    pair_table,
    sandwich_cov,
)
from rating.engine.bootstrap import bootstrap_params  # noqa: E402
from rating.engine.style import normalise_style  # noqa: E402

Arrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def simulate(n: int, m: int, seed: int = 0, tie_rate: float = 0.15) -> Arrays:
    """Uniform pairs, N(0, 1) strengths, ~tie_rate ties (half of them both bad)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1 / (1 + np.exp(-(theta[a] - theta[b])))
    close = np.minimum(p, 1 - p)  # ties drawn so E[score of A] stays sigmoid(d)
    tie = np.minimum(tie_rate / close.mean() * close, 2 * close)
    u = rng.random(n)
    o = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))
    o = np.where((o == 2) & (rng.random(n) < 0.5), 3, o)
    return a, b, o


def style_features(n: int, seed: int = 1) -> StyleFeatures:
    rng = np.random.default_rng(seed)
    fa = rng.poisson([400, 2, 5, 3], (n, 4)).astype(np.float64)
    fb = rng.poisson([400, 2, 5, 3], (n, 4)).astype(np.float64)
    return StyleFeatures(fa, fb)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours_bt(a: NDArray, b: NDArray, o: NDArray, m: int, rounds: int, sampler: str) -> None:
    table = pair_table(aggregate(a, b, o, n_models=m))
    fit = fit_bt(table)
    sandwich_cov(table, fit)
    bootstrap_params(table, fit, rounds=rounds, seed=0, sampler=sampler)  # type: ignore[arg-type]


def baseline_rows(
    a: NDArray, b: NDArray, o: NDArray, m: int, extra: NDArray | None = None
) -> tuple[csr_matrix, NDArray, NDArray]:
    """One design row per vote (+1 at a, -1 at b); ties become two rows of weight 1/2."""
    n = a.size
    x = csr_matrix(
        (np.r_[np.ones(n), -np.ones(n)], (np.r_[np.arange(n), np.arange(n)], np.r_[a, b])),
        shape=(n, m),
    )
    if extra is not None:
        x = hstack([x, csr_matrix(extra)], format="csr")
    decisive = o < 2
    tie_idx = np.flatnonzero(~decisive)
    rows = np.r_[np.flatnonzero(decisive), tie_idx, tie_idx]
    y = np.r_[
        (o[decisive] == 0).astype(int), np.ones(tie_idx.size, int), np.zeros(tie_idx.size, int)
    ]
    w = np.r_[np.ones(int(decisive.sum())), np.full(2 * tie_idx.size, 0.5)]
    return x[rows], y, w


def baseline_fit(x: csr_matrix, y: NDArray, w: NDArray) -> None:
    # C=inf is sklearn >= 1.8's spelling of penalty=None.
    LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-6, max_iter=1000).fit(
        x, y, sample_weight=w
    )


def baseline_boot_round(x: csr_matrix, y: NDArray, w: NDArray, rng: np.random.Generator) -> None:
    idx = rng.integers(0, y.size, y.size)  # resample rows with replacement, refit
    baseline_fit(x[idx], y[idx], w[idx])


def bench_size(n: int, m: int, repeats: int, base_rounds: int, style: bool) -> None:
    print(f"\n== {n:,} votes, {m} models ==")
    a, b, o = simulate(n, m)
    ties = float(np.isin(o, (2, 3)).mean())
    cells = pair_table(aggregate(a, b, o, n_models=m))
    print(f"ties {ties:.1%}; {cells.n_pairs:,} pairs, {int((cells.votes > 0).sum()):,} cells")

    t_ours = median_time(lambda: ours_bt(a, b, o, m, 1000, "auto"), repeats)
    print(f"ours     BT fit + 1000 bootstrap + sandwich (from arrays): {t_ours:8.3f} s")
    t_exact = median_time(lambda: ours_bt(a, b, o, m, 1000, "multinomial"), 1)
    print(f"ours     same, exact multinomial sampler (1 run):           {t_exact:8.3f} s")

    x, y, w = baseline_rows(a, b, o, m)
    t_fit = median_time(lambda: baseline_fit(x, y, w), max(1, repeats // 2))
    rng = np.random.default_rng(0)
    t_round = median_time(lambda: baseline_boot_round(x, y, w, rng), base_rounds)
    t_base = t_fit + 1000 * t_round
    print(f"baseline sklearn point fit (one row per vote):               {t_fit:8.3f} s")
    print(
        f"baseline bootstrap round (row resample + refit), median of {base_rounds}: "
        f"{t_round:.3f} s -> 1000 rounds extrapolated: {1000 * t_round:.0f} s"
    )
    print(
        f"speed-up fit + 1000 bootstrap: {t_base / t_ours:,.0f}x ({t_base:.0f} s vs {t_ours:.2f} s)"
    )

    if style:
        feats = style_features(n)
        t_style = median_time(lambda: fit_style(a, b, o, feats, n_models=m), repeats)
        print(f"ours     style-control fit + sandwich:                       {t_style:8.3f} s")
        z, _, _ = normalise_style(feats.features_a, feats.features_b)
        xs, ys, ws = baseline_rows(a, b, o, m, extra=z)
        t_sbase = median_time(lambda: baseline_fit(xs, ys, ws), max(1, repeats // 2))
        print(f"baseline style-control point fit (sklearn, no CI):           {t_sbase:8.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small arena (100k votes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        bench_size(100_000, 20, args.repeats, args.baseline_rounds, style=True)
        return
    bench_size(1_000_000, 100, args.repeats, args.baseline_rounds, style=True)
    bench_size(5_000_000, 300, args.repeats, max(1, args.baseline_rounds - 2), style=False)


if __name__ == "__main__":
    main()
