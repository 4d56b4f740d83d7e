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

from rating.engine.bt import STALLED, backtrack, gauge_inverse
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
    x = _normalised_difference(fa, fb)
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    std = x.std(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    x -= mean
    x /= np.where(std > 0, std, 1.0)
    x[:, std <= 0] = 0.0
    return x, mean, std


def _normalised_difference(fa: NDArray[np.float64], fb: NDArray[np.float64]) -> NDArray[np.float64]:
    """(f_a - f_b) / (f_a + f_b + 1), in place on two temporaries (this runs on ~1M x 4 rows
    per category); the denominator is freed on return, before the caller's statistics."""
    x = np.subtract(fa, fb)
    den = np.add(fa, fb)
    den += 1.0
    x /= den
    return x


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
    rows = _StyleRows(pair=a * m + b, za=za, y=y, w=w, m=m)
    theta = np.zeros(m) if start is None else np.asarray(start, dtype=np.float64).copy()
    theta, beta, eta, it, last = _newton(rows, theta, np.zeros(za.shape[1]), tol, max_iter)
    theta = theta - theta.mean()
    # After convergence the last derivatives were taken less than `tol` away from the estimate
    # (equal to ~1e-9 relative), so one more pass over the votes would change nothing.
    neg_h, wr = last if last is not None else rows.derivatives(eta)[1:]
    cov_active = _sandwich(rows, neg_h, wr)

    # Re-embed dropped (constant) features as zero coefficients with zero variance.
    idx = np.concatenate([np.arange(m), m + np.flatnonzero(active)])
    cov = np.zeros((m + s, m + s))
    cov[np.ix_(idx, idx)] = cov_active
    beta_full = np.zeros(s)
    beta_full[active] = beta
    return StyleFit(theta, beta_full, cov, style.names, mean, std, it, last is not None)


@dataclass(frozen=True)
class _StyleRows:
    """The votes of a style fit: ordered model pair (a * m + b), active z-scored style
    columns, the score of A (1, 0.5, 0) and optional vote weights."""

    pair: NDArray[np.int64]
    za: NDArray[np.float64]
    y: NDArray[np.float64]
    w: NDArray[np.float64] | None
    m: int

    def pair_sums(self, v: NDArray) -> NDArray:
        """Per-vote values summed per ordered model pair, as an (m, m) matrix."""
        return np.bincount(self.pair, v, self.m * self.m).reshape(self.m, self.m)

    def linear(self, theta: NDArray, beta: NDArray) -> NDArray:
        """The linear predictor theta_a - theta_b + z . beta of every vote."""
        eta = (theta[:, None] - theta[None, :]).reshape(-1)[self.pair]
        if self.za.shape[1]:
            eta += self.za @ beta
        return eta

    def loglik(self, eta: NDArray) -> float:
        # y log p + (1 - y) log(1 - p) = y eta + log(1 - p) = y eta + log_expit(-eta)
        ll = self.y * eta
        ll += log_expit(-eta)
        return float(ll.sum() if self.w is None else self.w @ ll)

    def derivatives(self, eta: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """Gradient, negative Hessian and the per-vote score weights w (y - p) at eta."""
        p = expit(eta)
        wr = self.y - p
        p *= 1.0 - p  # curvature p (1 - p)
        if self.w is not None:
            wr *= self.w
            p *= self.w
        curv = p
        neg_h, g_pair = _blocks(self.pair_sums, self.za, curv, self.m)
        grad = np.concatenate([g_pair(wr), self.za.T @ wr])
        return grad, neg_h, wr


def _newton(
    rows: _StyleRows, theta: NDArray, beta: NDArray, tol: float, max_iter: int
) -> tuple[NDArray, NDArray, NDArray, int, tuple[NDArray, NDArray] | None]:
    """Damped Newton: (theta, beta, eta there, iterations, the last (negative Hessian, score
    weights) when converged, else None)."""
    m = rows.m
    eta = rows.linear(theta, beta)
    current = rows.loglik(eta)

    def trial_at(scale: float) -> tuple[tuple[NDArray, NDArray, NDArray], float]:
        t_new, b_new = theta + scale * step[:m], beta + scale * step[m:]
        eta_new = rows.linear(t_new, b_new)
        return (t_new, b_new, eta_new), rows.loglik(eta_new)

    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        grad, neg_h, wr = rows.derivatives(eta)
        step = gauge_inverse(neg_h, m, 0.0) @ grad
        (theta, beta, eta), current, scale = backtrack(current, trial_at)
        if np.max(np.abs(step)) < tol:  # the full step: see bt.STALLED
            return theta, beta, eta, it, (neg_h, wr)
        if scale < STALLED:
            return theta, beta, eta, it, None
    return theta, beta, eta, it, None


def _sandwich(rows: _StyleRows, neg_h: NDArray, wr: NDArray) -> NDArray:
    """Sandwich H^-1 G H^-1 of (theta, beta), G from the per-vote scores w (y - p) (x, z);
    the theta block mean-centred."""
    m, k = rows.m, rows.za.shape[1]
    h_inv = gauge_inverse(neg_h, m, 0.0)
    g, _ = _blocks(rows.pair_sums, rows.za, wr * wr, m)
    cov = h_inv @ g @ h_inv
    centre = np.eye(m + k)
    centre[:m, :m] -= 1.0 / m
    return centre @ cov @ centre.T


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
