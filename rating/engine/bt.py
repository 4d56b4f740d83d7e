"""Bradley-Terry maximum likelihood on a `PairTable`, with three tie conventions.

Strengths `theta` are natural log-odds units (P(i beats j) = sigmoid(theta_i - theta_j) for the
half-win model), identified by sum(theta) = 0. Tie conventions:

* ``"half"``: a tie or both-bad vote is half a win for each side (Chatbot Arena). The fit equals
  unregularised logistic regression on one row per vote.
* ``"rao-kupper"``: P(i won) = sigmoid(d - eta), P(j won) = sigmoid(-d - eta), tie = the rest.
* ``"davidson"``: P(i won) : P(j won) : P(tie) = e^{d/2} : e^{-d/2} : nu.

The tie parameter is fitted on the log scale (kappa = log eta or log nu). Fitting is damped
Newton with an analytic gradient and Hessian; each iteration costs O(pairs + models^3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, log_expit

from rating.engine.data import (
    DisconnectedGraphError,
    PairTable,
    RatingError,
    components,
    mle_exists,
)
from rating.engine.threads import single_blas

TieModel = Literal["half", "rao-kupper", "davidson"]
TIE_MODELS: tuple[str, ...] = ("half", "rao-kupper", "davidson")
HALF_Y = np.array([1.0, 0.5, 0.0])  # score of i for classes (i won, tie, j won)
AUTO_RIDGE = 1e-2  # used only when the MLE does not exist (a model never lost or never won)
_FD_STEP = 1e-5
_KAPPA_MIN = -20.0
# A line search that had to shrink the Newton step below this found no better point: the
# objective is flat along the step (separated data, no finite maximum). That is a failure, not
# convergence: only a small FULL Newton step counts as converged (a damped step shrunk to
# nothing used to pass the tolerance, and a diverging fit was reported as converged).
STALLED = 2.0**-30
T = TypeVar("T")


@dataclass(frozen=True)
class BTFit:
    """A fitted model. `theta` sums to zero; `kappa` is log(eta) or log(nu), None for half."""

    theta: NDArray[np.float64]
    kappa: float | None
    ties: str
    ridge: float
    iterations: int
    converged: bool
    loglik: float

    @property
    def tie_param(self) -> float | None:
        """eta (Rao-Kupper) or nu (Davidson) on its natural scale."""
        return None if self.kappa is None else float(np.exp(self.kappa))

    @property
    def params(self) -> NDArray[np.float64]:
        return self.theta if self.kappa is None else np.append(self.theta, self.kappa)


Derivs = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]


def _half(d: NDArray[np.float64], kappa: float | NDArray | None) -> Derivs:
    """Per-class log-likelihood and d-derivative; the last axis is the class."""
    ls, lf = log_expit(d)[..., None], log_expit(-d)[..., None]
    ll = HALF_Y * ls + (1 - HALF_Y) * lf
    return ll, HALF_Y - expit(d)[..., None], None


def _davidson(d: NDArray[np.float64], kappa: float | NDArray | None) -> Derivs:
    k = np.broadcast_to(np.asarray(kappa, dtype=np.float64), d.shape)
    stack = np.stack([d / 2, -d / 2, k], axis=-1)
    log_z = np.logaddexp(np.logaddexp(stack[..., 0], stack[..., 1]), stack[..., 2])[..., None]
    prob = np.exp(stack - log_z)
    ll = np.stack([d / 2, k, -d / 2], axis=-1) - log_z
    dz = (prob[..., 0] - prob[..., 1])[..., None] / 2
    ld = np.array([0.5, 0.0, -0.5]) - dz
    lk = np.array([0.0, 1.0, 0.0]) - prob[..., 2:3]
    return ll, ld, lk


def _rao_kupper(d: NDArray[np.float64], kappa: float | NDArray | None) -> Derivs:
    eta = np.exp(np.asarray(kappa, dtype=np.float64))
    x_w, x_l = d - eta, -d - eta
    p_w, p_l = expit(x_w), expit(x_l)
    p_t = np.maximum(1.0 - p_w - p_l, 1e-300)
    ll = np.stack([log_expit(x_w), np.log(p_t), log_expit(x_l)], axis=-1)
    v_w, v_l = p_w * (1 - p_w), p_l * (1 - p_l)
    ld = np.stack([1 - p_w, (v_l - v_w) / p_t, -(1 - p_l)], axis=-1)
    # d/d kappa = eta * d/d eta
    le = np.stack([-(1 - p_w), (v_w + v_l) / p_t, -(1 - p_l)], axis=-1)
    return ll, ld, le * eta[..., None] if np.ndim(eta) else le * eta


DERIVS: dict[str, Callable[[NDArray[np.float64], float | NDArray | None], Derivs]] = {
    "half": _half,
    "rao-kupper": _rao_kupper,
    "davidson": _davidson,
}


def _check_ties(ties: str) -> None:
    if ties not in DERIVS:
        raise RatingError(f"unknown tie model {ties!r}; expected one of {TIE_MODELS}")


def scatter(i: NDArray, j: NDArray, x: NDArray, m: int) -> NDArray[np.float64]:
    """Sum x over pairs into models: +x at i, -x at j (the design column e_i - e_j)."""
    return np.bincount(i, x, m) - np.bincount(j, x, m)


def laplacian(i: NDArray, j: NDArray, w: NDArray, m: int) -> NDArray[np.float64]:
    """sum_pairs w * (e_i - e_j)(e_i - e_j)^T as a dense (m, m) matrix."""
    off = np.bincount(i * m + j, w, m * m).reshape(m, m)
    lap = -(off + off.T)
    lap[np.diag_indices(m)] += np.bincount(i, w, m) + np.bincount(j, w, m)
    return lap


def second_derivs(
    ties: str, d: NDArray[np.float64], kappa: float | None
) -> tuple[NDArray, NDArray | None, NDArray | None]:
    """Per-class second derivatives (ldd, ldk, lkk); analytic for half, central differences
    of the analytic first derivatives otherwise (error ~1e-10)."""
    if ties == "half":
        p = expit(d)
        return np.broadcast_to((-p * (1 - p))[..., None], d.shape + (3,)), None, None
    f = DERIVS[ties]
    h = _FD_STEP
    _, ld_p, lk_p = f(d + h, kappa)
    _, ld_m, lk_m = f(d - h, kappa)
    _, ld_kp, lk_kp = f(d, kappa + h)  # type: ignore[operator]
    _, ld_km, lk_km = f(d, kappa - h)  # type: ignore[operator]
    assert lk_p is not None and lk_m is not None and lk_kp is not None and lk_km is not None
    ldd = (ld_p - ld_m) / (2 * h)
    ldk = (ld_kp - ld_km) / (2 * h)
    lkk = (lk_kp - lk_km) / (2 * h)
    return ldd, ldk, lkk


def objective(table: PairTable, ties: str, params: NDArray, ridge: float) -> float:
    """Penalised log-likelihood (to maximise)."""
    m = table.n_models
    theta = params[:m]
    kappa = params[m] if params.size > m else None
    ll, _, _ = DERIVS[ties](theta[table.i] - theta[table.j], kappa)
    return float((table.weight * ll).sum() - 0.5 * ridge * theta @ theta)


def gradient_hessian(
    table: PairTable, ties: str, params: NDArray, ridge: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradient and NEGATIVE Hessian of `objective` in (theta, kappa)."""
    m, w = table.n_models, table.weight
    theta = params[:m]
    kappa = float(params[m]) if params.size > m else None
    d = theta[table.i] - theta[table.j]
    _, ld, lk = DERIVS[ties](d, kappa)
    ldd, ldk, lkk = second_derivs(ties, d, kappa)
    g_r = scatter(table.i, table.j, (w * ld).sum(1), m) - ridge * theta
    h_rr = laplacian(table.i, table.j, -(w * ldd).sum(1), m) + ridge * np.eye(m)
    if kappa is None:
        return g_r, h_rr
    assert lk is not None and ldk is not None and lkk is not None
    n = m + 1
    neg_h = np.empty((n, n))
    neg_h[:m, :m] = h_rr
    neg_h[:m, m] = neg_h[m, :m] = -scatter(table.i, table.j, (w * ldk).sum(1), m)
    neg_h[m, m] = -(w * lkk).sum()
    return np.append(g_r, (w * lk).sum()), neg_h


def gauge_inverse(neg_h: NDArray[np.float64], m: int, ridge: float) -> NDArray[np.float64]:
    """Inverse of the negative Hessian on the sum(theta) = 0 subspace.

    Without a ridge the Hessian is singular along (1,...,1, 0); adding u u^T (u the unit
    vector along it) makes it invertible and subtracting u u^T afterwards gives the
    Moore-Penrose pseudo-inverse. With a ridge the plain inverse already keeps the gauge.
    """
    n = neg_h.shape[0]
    if ridge > 0:
        return np.linalg.inv(neg_h)
    u = np.zeros(n)
    u[:m] = 1 / np.sqrt(m)
    uu = np.outer(u, u)
    try:
        return np.linalg.inv(neg_h + uu) - uu
    except np.linalg.LinAlgError:
        return np.linalg.pinv(neg_h)


def _initial_kappa(table: PairTable, ties: str) -> float:
    tie_rate = table.weight[:, 1].sum() / max(table.weight.sum(), 1e-300)
    t = float(np.clip(tie_rate, 1e-6, 0.999))
    if ties == "davidson":  # at d = 0, P(tie) = nu / (2 + nu)
        return float(np.log(2 * t / (1 - t)))
    return float(np.log(np.log((1 + t) / (1 - t))))  # at d = 0, P(tie) = 1 - 2 sigmoid(-eta)


def backtrack(value: float, trial_at: Callable[[float], tuple[T, float]]) -> tuple[T, float, float]:
    """Backtracking line search for a maximisation: halve the step (at most 40 times) until the
    objective is not worse than ``value`` (up to 1e-12 relative). ``trial_at(scale)`` returns
    the point at that fraction of the full step and its objective. Returns the point taken, its
    objective and the scale. A full Newton step is almost always accepted.
    """
    scale = 1.0
    for _ in range(40):
        point, new = trial_at(scale)
        if new >= value - 1e-12 * abs(value):
            break
        scale /= 2
    return point, new, scale


def _check_fit_input(table: PairTable, ties: str, ridge: float | None) -> float:
    """Refuse what `fit_bt` cannot fit; returns the ridge to use."""
    _check_ties(ties)
    comp = components(table)
    if table.n_models > 1 and comp.max() > 0:
        raise DisconnectedGraphError(comp)
    if ridge is None:
        ridge = 0.0 if mle_exists(table) else AUTO_RIDGE
    if ties != "half" and table.weight[:, 1].sum() <= 0:
        raise RatingError(f"the {ties} tie model needs at least one tie vote")
    return ridge


def _start_params(
    table: PairTable, ties: str, ridge: float, start: NDArray[np.float64] | None
) -> NDArray[np.float64]:
    """Starting (theta, kappa): ``start``, else zeros (half) or the half-win fit plus the tie
    parameter matching the observed tie rate at equal strengths; theta mean-centred."""
    m = table.n_models
    if start is not None:
        params = start.astype(np.float64).copy()
    else:
        params = np.zeros(m)
        if ties != "half":
            params = np.append(fit_bt(table, ridge=ridge).theta, _initial_kappa(table, ties))
    params[:m] -= params[:m].mean()
    return params


def _newton(
    table: PairTable,
    ties: str,
    ridge: float,
    params: NDArray[np.float64],
    tol: float,
    max_iter: int,
) -> tuple[NDArray[np.float64], float, int, bool]:
    """Damped Newton from ``params``: (params, objective, iterations, converged)."""
    m = table.n_models
    value = objective(table, ties, params, ridge)

    def trial_at(scale: float) -> tuple[NDArray[np.float64], float]:
        trial = params + scale * step
        if trial.size > m:
            trial[m] = max(trial[m], _KAPPA_MIN)
        return trial, objective(table, ties, trial, ridge)

    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        grad, neg_h = gradient_hessian(table, ties, params, ridge)
        step = gauge_inverse(neg_h, m, ridge) @ grad
        if params.size > m:  # keep kappa in a sane range for the line search
            step[m] = np.clip(step[m], -2.0, 2.0)
        params, value, scale = backtrack(value, trial_at)
        if np.max(np.abs(step)) < tol:
            return params, value, it, True
        if scale < STALLED:
            return params, value, it, False
    return params, value, it, False


@single_blas
def fit_bt(
    table: PairTable,
    *,
    ties: str = "half",
    ridge: float | None = None,
    start: NDArray[np.float64] | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> BTFit:
    """Maximum-likelihood BT fit on a pair table whose comparison graph is connected.

    `ridge=None` means: no penalty when the MLE exists, else `AUTO_RIDGE` (a Gaussian prior
    with sd 10 log-odds units) so that a model that never lost still gets a finite score.
    Raises `DisconnectedGraphError` when some models are not linked by votes (fit each
    component, as `leaderboard()` does), `RatingError` for an unknown tie model or for tie
    models without any tie.
    """
    ridge = _check_fit_input(table, ties, ridge)
    m = table.n_models
    if m == 1:
        kappa = None if ties == "half" else _initial_kappa(table, ties)
        return BTFit(np.zeros(1), kappa, ties, ridge, 0, True, 0.0)
    params = _start_params(table, ties, ridge, start)
    params, value, it, converged = _newton(table, ties, ridge, params, tol, max_iter)
    theta = params[:m] - params[:m].mean()
    kappa = float(params[m]) if params.size > m else None
    return BTFit(theta, kappa, ties, ridge, it, converged, value)


def sandwich_cov(table: PairTable, fit: BTFit) -> NDArray[np.float64]:
    """Robust (Huber-White) covariance H^-1 G H^-1 of (theta, kappa) at the fit.

    G sums the outer products of per-vote scores cell by cell (`weight_sq` carries the
    squared vote weights), so it stays valid when BT is misspecified or votes are weighted.
    theta is the sum-zero (mean-centred) parametrisation.
    """
    m, i, j = table.n_models, table.i, table.j
    w2 = table.weight_sq
    _, neg_h = gradient_hessian(table, fit.ties, fit.params, fit.ridge)
    h_inv = gauge_inverse(neg_h, m, fit.ridge)
    d = fit.theta[i] - fit.theta[j]
    _, ld, lk = DERIVS[fit.ties](d, fit.kappa)
    g = laplacian(i, j, (w2 * ld * ld).sum(1), m)
    if lk is not None:
        full = np.empty((m + 1, m + 1))
        full[:m, :m] = g
        full[:m, m] = full[m, :m] = scatter(i, j, (w2 * ld * lk).sum(1), m)
        full[m, m] = (w2 * lk * lk).sum()
        g = full
    cov = h_inv @ g @ h_inv
    centre = np.eye(cov.shape[0])
    centre[:m, :m] -= 1.0 / m
    return centre @ cov @ centre.T


def posterior_cov(table: PairTable, fit: BTFit) -> NDArray[np.float64]:
    """Laplace (posterior) covariance of (theta, kappa) at a ridge fit: the inverse of the
    negative Hessian of the penalised log-likelihood (Fisher information + prior precision),
    theta block mean-centred. With a ridge of 1 / sd^2 this is the posterior of a Gaussian
    N(0, sd^2) prior on each strength: a model with few votes keeps about the prior's width."""
    m = table.n_models
    _, neg_h = gradient_hessian(table, fit.ties, fit.params, fit.ridge)
    cov = gauge_inverse(neg_h, m, fit.ridge)
    centre = np.eye(cov.shape[0])
    centre[:m, :m] -= 1.0 / m
    return centre @ cov @ centre.T
