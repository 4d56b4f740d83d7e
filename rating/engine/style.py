"""Style control: BT with per-vote style covariates (Chatbot Arena, Aug 2024).

logit P(A wins) = theta_a - theta_b + z . beta, ties as half a win, no penalty. For each style
feature f the covariate is (f_a - f_b) / (f_a + f_b + 1), z-scored over the votes (FastChat's
`add_one=True` normalisation). beta is then "log-odds per standard deviation of the normalised
difference". Unlike FastChat (ridge 0.5 on every parameter) the fit is the plain MLE,
identified by sum(theta) = 0.

Cost: one Newton iteration is O(votes x features) plus a (models + features)^3 solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, log_expit

from rating.engine.bt import gauge_inverse
from rating.engine.data import HALF_SCORE, InvalidVoteError, parse_outcomes
from rating.engine.threads import single_blas

STYLE_FEATURES: tuple[str, ...] = ("length", "headers", "lists", "bold")


@dataclass(frozen=True)
class StyleFeatures:
    """Raw per-vote style counts for each side: shape (votes, features), non-negative."""

    features_a: NDArray[np.float64]
    features_b: NDArray[np.float64]
    names: tuple[str, ...] = STYLE_FEATURES


@dataclass(frozen=True)
class StyleFit:
    """Controlled strengths (`theta`, sum zero) and style coefficients with their covariance.

    `cov` is the sandwich covariance of (theta, beta), theta block mean-centred.
    `feature_mean`/`feature_std` are the z-score constants used (std 0 => column dropped,
    its coefficient reported as 0).
    """

    theta: NDArray[np.float64]
    beta: NDArray[np.float64]
    cov: NDArray[np.float64]
    names: tuple[str, ...]
    feature_mean: NDArray[np.float64]
    feature_std: NDArray[np.float64]
    iterations: int
    converged: bool


def normalise_style(
    features_a: ArrayLike, features_b: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(f_a - f_b) / (f_a + f_b + 1), z-scored per column. Returns (z, mean, std)."""
    fa = np.asarray(features_a, dtype=np.float64)
    fb = np.asarray(features_b, dtype=np.float64)
    if fa.ndim == 1:
        fa, fb = fa[:, None], fb[:, None]
    if fa.shape != fb.shape:
        raise InvalidVoteError("features_a and features_b must have the same shape")
    # In place on two temporaries: this runs on ~1M x 4 rows per category.
    x = np.subtract(fa, fb)
    den = np.add(fa, fb)
    den += 1.0
    x /= den
    del den
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    std = x.std(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    x -= mean
    x /= np.where(std > 0, std, 1.0)
    x[:, std <= 0] = 0.0
    return x, mean, std


@single_blas
def fit_style(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    style: StyleFeatures,
    *,
    n_models: int,
    weights: ArrayLike | None = None,
    start: ArrayLike | None = None,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> StyleFit:
    """Fit style-controlled BT on per-vote rows (a connected comparison graph is assumed).

    Rows are used as they are (identical rows simply repeat; with continuous style features
    they rarely exist). `start` is an optional initial theta (e.g. the plain BT fit), which
    saves Newton iterations. Each iteration is one pass over the votes: the linear predictor
    and log-likelihood at the trial point, then gradient and Hessian there, all aggregated per
    ordered model pair with `np.bincount` (the model blocks are then O(m^2)).
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    y = HALF_SCORE[parse_outcomes(outcome)]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    z, mean, std = normalise_style(style.features_a, style.features_b)
    if z.shape[0] != a.size:
        raise InvalidVoteError("style features need one row per vote")
    m, s = n_models, z.shape[1]
    active = std > 0
    za = np.ascontiguousarray(z[:, active]) if not active.all() else z
    k = za.shape[1]
    pair = a * m + b
    theta = np.zeros(m) if start is None else np.asarray(start, dtype=np.float64).copy()
    beta = np.zeros(k)

    def linear(th: NDArray, be: NDArray) -> NDArray:
        eta = (th[:, None] - th[None, :]).reshape(-1)[pair]
        if k:
            eta += za @ be
        return eta

    def loglik(eta: NDArray) -> float:
        # y log p + (1 - y) log(1 - p) = y eta + log(1 - p) = y eta + log_expit(-eta)
        ll = y * eta
        ll += log_expit(-eta)
        return float(ll.sum() if w is None else w @ ll)

    def pair_sums(v: NDArray) -> NDArray:
        return np.bincount(pair, v, m * m).reshape(m, m)

    def derivatives(eta: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """Gradient, negative Hessian and the per-vote score weights w (y - p) at eta."""
        p = expit(eta)
        wr = y - p
        p *= 1.0 - p  # curvature p (1 - p)
        if w is not None:
            wr *= w
            p *= w
        curv = p
        neg_h, g_pair = _blocks(pair_sums, za, curv, m)
        grad = np.concatenate([g_pair(wr), za.T @ wr])
        return grad, neg_h, wr

    eta = linear(theta, beta)
    current = loglik(eta)
    converged, it = False, 0
    neg_h = wr = None
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        grad, neg_h, wr = derivatives(eta)
        step = gauge_inverse(neg_h, m, 0.0) @ grad
        scale = 1.0
        for _ in range(40):  # backtracking; a full Newton step is almost always accepted
            t_new, b_new = theta + scale * step[:m], beta + scale * step[m:]
            eta_new = linear(t_new, b_new)
            new = loglik(eta_new)
            if new >= current - 1e-12 * abs(current):
                break
            scale /= 2
        theta, beta, eta, current = t_new, b_new, eta_new, new
        if np.max(np.abs(scale * step)) < tol:
            converged = True
            break
    theta = theta - theta.mean()

    # Sandwich H^-1 G H^-1 with G from the per-vote scores w (y - p) (x, z), at the estimate.
    # After convergence the last derivatives were taken less than `tol` away from it (equal
    # to ~1e-9 relative), so one more pass over the votes would change nothing.
    if not converged or neg_h is None or wr is None:
        _, neg_h, wr = derivatives(eta)
    h_inv = gauge_inverse(neg_h, m, 0.0)
    g, _ = _blocks(pair_sums, za, wr * wr, m)
    cov_active = h_inv @ g @ h_inv
    centre = np.eye(m + k)
    centre[:m, :m] -= 1.0 / m
    cov_active = centre @ cov_active @ centre.T

    # Re-embed dropped (constant) features as zero coefficients with zero variance.
    idx = np.concatenate([np.arange(m), m + np.flatnonzero(active)])
    cov = np.zeros((m + s, m + s))
    cov[np.ix_(idx, idx)] = cov_active
    beta_full = np.zeros(s)
    beta_full[active] = beta
    return StyleFit(theta, beta_full, cov, style.names, mean, std, it, converged)


def _blocks(pair_sums, za: NDArray, c: NDArray, m: int):  # type: ignore[no-untyped-def]
    """sum_votes c x x^T with x = (e_a - e_b, z) as an (m + k)^2 matrix, from pair sums.

    Also returns g_pair(v) = sum_votes v (e_a - e_b), the model part of a score vector.
    """
    k = za.shape[1]
    out = np.empty((m + k, m + k))
    off = pair_sums(c)
    out[:m, :m] = -(off + off.T)
    out[np.diag_indices(m)] += off.sum(axis=1) + off.sum(axis=0)
    for f in range(k):
        col = pair_sums(c * za[:, f])
        out[:m, m + f] = col.sum(axis=1) - col.sum(axis=0)
    out[m:, :m] = out[:m, m:].T
    out[m:, m:] = za.T @ (c[:, None] * za)

    def g_pair(v: NDArray) -> NDArray:
        t = pair_sums(v)
        return t.sum(axis=1) - t.sum(axis=0)

    return out, g_pair
