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
    x = (fa - fb) / (fa + fb + 1.0)
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    std = x.std(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    safe = np.where(std > 0, std, 1.0)
    z = np.where(std > 0, (x - mean) / safe, 0.0)
    return z, mean, std


def fit_style(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    style: StyleFeatures,
    *,
    n_models: int,
    weights: ArrayLike | None = None,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> StyleFit:
    """Fit style-controlled BT on per-vote rows (a connected comparison graph is assumed).

    Rows are used as they are; identical rows simply repeat (the cost is linear in votes).
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    y = HALF_SCORE[parse_outcomes(outcome)]
    w = np.ones(a.size) if weights is None else np.asarray(weights, dtype=np.float64)
    z, mean, std = normalise_style(style.features_a, style.features_b)
    if z.shape[0] != a.size:
        raise InvalidVoteError("style features need one row per vote")
    m, s = n_models, z.shape[1]
    active = std > 0
    za = z[:, active]
    k = za.shape[1]
    pair = a * m + b
    theta, beta = np.zeros(m), np.zeros(k)

    def value(th: NDArray, be: NDArray) -> float:
        eta = th[a] - th[b] + za @ be
        return float((w * (y * log_expit(eta) + (1 - y) * log_expit(-eta))).sum())

    def scores_and_hessian(th: NDArray, be: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        eta = th[a] - th[b] + za @ be
        p = expit(eta)
        resid = y - p
        curv = w * p * (1 - p)
        neg_h = np.empty((m + k, m + k))
        neg_h[:m, :m] = _pair_laplacian(pair, curv, m)
        cross = (curv[:, None] * za).T  # (k, votes)
        neg_h[:m, m:] = _cross(a, b, cross, m)
        neg_h[m:, :m] = neg_h[:m, m:].T
        neg_h[m:, m:] = za.T @ (curv[:, None] * za)
        return resid, p, curv, neg_h

    current = value(theta, beta)
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        resid, _, _, neg_h = scores_and_hessian(theta, beta)
        wr = w * resid
        grad = np.concatenate([np.bincount(a, wr, m) - np.bincount(b, wr, m), za.T @ wr])
        step = gauge_inverse(neg_h, m, 0.0) @ grad
        scale = 1.0
        for _ in range(40):
            t_new, b_new = theta + scale * step[:m], beta + scale * step[m:]
            new = value(t_new, b_new)
            if new >= current - 1e-12 * abs(current):
                break
            scale /= 2
        theta, beta, current = t_new, b_new, new
        if np.max(np.abs(scale * step)) < tol:
            converged = True
            break
    theta -= theta.mean()

    # Sandwich: G from per-vote scores w (y - p) (x, z).
    resid, _, _, neg_h = scores_and_hessian(theta, beta)
    h_inv = gauge_inverse(neg_h, m, 0.0)
    sq = (w * resid) ** 2
    g = np.empty_like(neg_h)
    g[:m, :m] = _pair_laplacian(pair, sq, m)
    g[:m, m:] = _cross(a, b, (sq[:, None] * za).T, m)
    g[m:, :m] = g[:m, m:].T
    g[m:, m:] = za.T @ (sq[:, None] * za)
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


def _pair_laplacian(pair: NDArray[np.int64], w: NDArray[np.float64], m: int) -> NDArray:
    """sum_votes w (e_a - e_b)(e_a - e_b)^T, aggregated per ordered pair first."""
    off = np.bincount(pair, w, m * m).reshape(m, m)
    lap = -(off + off.T)
    lap[np.diag_indices(m)] += off.sum(axis=1) + off.sum(axis=0)
    return lap


def _cross(a: NDArray[np.int64], b: NDArray[np.int64], cols: NDArray, m: int) -> NDArray:
    """(m, k) matrix sum_votes (e_a - e_b) c_k for each row c_k of `cols` (shape (k, votes))."""
    out = np.zeros((m, cols.shape[0]))
    for f, c in enumerate(cols):
        out[:, f] = np.bincount(a, c, m) - np.bincount(b, c, m)
    return out
