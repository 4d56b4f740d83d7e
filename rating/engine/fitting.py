"""The fit behind a leaderboard: the rated group of models, its strengths, intervals and status.

Only the largest connected group of the comparison graph (component 0: most votes) is rated:
strengths of different components are not on one scale, so a single table ranking them would
invite comparisons the votes cannot support. The group's fit is plain Bradley-Terry (any tie
model) or style control (half ties, sandwich); `rating.engine.quality` decides whether the
unregularised fit is trusted, regularised, or withheld, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rating.engine import quality
from rating.engine.bootstrap import Sampler, bootstrap_params
from rating.engine.bt import BTFit, fit_bt, posterior_cov, sandwich_cov
from rating.engine.data import InvalidVoteError, PairTable, mle_exists
from rating.engine.quality import BoardStatus
from rating.engine.style import StyleFeatures, StyleFit, fit_style


@dataclass(frozen=True)
class FitOptions:
    """How to fit and bound the rated group: tie model, interval method and level (z is the
    normal quantile of the level), bootstrap rounds, sampler and seed."""

    ties: str
    ci: str
    level: float
    z: float
    rounds: int
    sampler: Sampler
    seed: int | None


@dataclass(frozen=True)
class Votes:
    """The per-vote arrays a style-controlled fit reads."""

    model_a: ArrayLike
    model_b: ArrayLike
    outcome_codes: NDArray
    weights: ArrayLike | None
    style: StyleFeatures

    @property
    def n_features(self) -> int:
        shape = np.shape(self.style.features_a)
        return 1 if len(shape) == 1 else int(shape[1])


@dataclass
class Estimates:
    """Strengths and their interval bounds per model (natural log-odds, NaN = unrated), the
    reported parameters, the plain fits, the warnings so far and the board's status."""

    theta: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    params: dict[str, object]
    fits: list[BTFit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: BoardStatus = field(default_factory=lambda: BoardStatus(quality.EMPTY, "no votes"))
    converged: bool = True


def fit_main(
    table: PairTable, comp: NDArray, names: list[str], options: FitOptions, votes: Votes | None
) -> Estimates:
    """Fit the rated group (component 0) and decide the board's status."""
    m = table.n_models
    est = Estimates(
        theta=np.full(m, np.nan), lower=np.full(m, np.nan), upper=np.full(m, np.nan),
        params={"tie_model": options.ties, "tie_param": None, "style": None},
    )  # fmt: skip
    if not m or table.votes.sum() == 0:
        return est
    members = np.flatnonzero(comp == 0)
    if members.size < 2:
        est.status = quality.withheld(quality.NO_PAIR)
        return est
    sub, _ = table.subset(members)
    decisive = quality.decisive_votes(sub)
    if decisive == 0:
        est.status = quality.withheld(quality.ALL_TIES)
        return est
    sub_names = [names[k] for k in members]
    if votes is not None:
        _fit_style_main(members, sub, sub_names, votes, options, est, decisive)
    else:
        _fit_plain_main(sub, members, sub_names, options, est, decisive)
    return est


def _fit_plain_main(
    sub: PairTable,
    members: NDArray[np.int64],
    names: list[str],
    options: FitOptions,
    est: Estimates,
    decisive: int,
) -> None:
    """Plain BT of the rated group: unregularised when trusted, else with the stated prior."""
    ties = options.ties
    if ties != "half" and sub.weight[:, 1].sum() <= 0:
        est.warnings.append(f"no ties among the rated models; fitted with ties='half' ({ties})")
        ties = "half"
    needed = quality.needed_decisive_votes(sub.n_models)
    separated = not mle_exists(sub)
    trusted = decisive >= needed and not separated
    fit = fit_bt(sub, ties=ties, ridge=0.0 if trusted else quality.PRIOR_RIDGE)
    est.fits.append(fit)
    if not fit.converged:
        est.converged = False
        est.status = quality.withheld(
            quality.not_converged("Bradley-Terry", fit.iterations), decisive=decisive,
            needed=needed,
        )  # fmt: skip
        return
    intervals = options.ci if trusted else "posterior"
    lo, hi = _intervals(sub, fit, intervals, options)
    est.theta[members], est.lower[members], est.upper[members] = fit.theta, lo, hi
    if fit.tie_param is not None:
        est.params["tie_param"] = fit.tie_param
    if trusted:
        est.status = BoardStatus(quality.OK, None, decisive, needed, None, intervals)
        return
    reason = quality.regularised_reason(
        decisive=decisive, needed=needed, separated=separated,
        extremes=quality.unbeaten_or_winless(sub, names) if separated else [],
    )  # fmt: skip
    est.status = BoardStatus(
        quality.REGULARISED, reason, decisive, needed, quality.PRIOR_SD, intervals
    )


def _intervals(
    sub: PairTable, fit: BTFit, method: str, options: FitOptions
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Interval ends of the strengths: sandwich, posterior (both normal) or bootstrap."""
    m = sub.n_models
    if method in ("sandwich", "posterior"):
        cov = sandwich_cov(sub, fit) if method == "sandwich" else posterior_cov(sub, fit)
        se = np.sqrt(np.maximum(np.diag(cov)[:m], 0.0))
        return fit.theta - options.z * se, fit.theta + options.z * se
    boot = bootstrap_params(
        sub, fit, rounds=options.rounds, seed=options.seed, sampler=options.sampler
    )[:, :m]
    q = np.quantile(boot, [0.5 - options.level / 2, 0.5 + options.level / 2], axis=0)
    return q[0], q[1]


def _fit_style_main(
    members: NDArray[np.int64],
    sub: PairTable,
    names: list[str],
    votes: Votes,
    options: FitOptions,
    est: Estimates,
    decisive: int,
) -> None:
    """Style control of the rated group, or the reason it is withheld; writes into ``est``."""
    k = votes.n_features
    needed = quality.needed_decisive_votes(sub.n_models, k)
    if decisive < needed:
        est.status = quality.withheld(
            quality.style_shortfall_reason(
                decisive=decisive, needed=needed, n_models=sub.n_models, n_features=k
            ),
            decisive=decisive, needed=needed,
        )  # fmt: skip
        return
    if not mle_exists(sub):
        est.status = quality.withheld(quality.STYLE_SEPARATED, decisive=decisive, needed=needed)
        return
    # The plain fit (O(pairs)) is a close start: fewer passes over the votes.
    fit = _style_rows_fit(members, est.theta.size, votes, fit_bt(sub, ties="half").theta)
    converged = fit.converged and bool(np.isfinite(fit.theta).all() & np.isfinite(fit.cov).all())
    if not converged:  # no coefficient of a fit that did not converge is reported
        est.params["style"] = {"features": list(fit.names), "converged": False}
        est.converged = False
        est.status = quality.withheld(
            quality.not_converged("style-controlled", fit.iterations), decisive=decisive,
            needed=needed,
        )  # fmt: skip
        return
    est.params["style"] = _style_params(fit, options.z, sub.n_models)
    se = np.sqrt(np.maximum(np.diag(fit.cov), 0.0))[: sub.n_models]
    est.theta[members] = fit.theta
    est.lower[members] = fit.theta - options.z * se
    est.upper[members] = fit.theta + options.z * se
    est.status = BoardStatus(quality.OK, None, decisive, needed, None, "sandwich")


def _style_rows_fit(
    members: NDArray[np.int64], m: int, votes: Votes, start: NDArray | None
) -> StyleFit:
    """``fit_style`` on the votes between ``members`` (all votes when they are every model)."""
    outcome_codes, style = votes.outcome_codes, votes.style
    a = np.asarray(votes.model_a, dtype=np.int64)
    b = np.asarray(votes.model_b, dtype=np.int64)
    fa = np.asarray(style.features_a, dtype=np.float64)
    fb = np.asarray(style.features_b, dtype=np.float64)
    if fa.shape[0] != a.size or fb.shape[0] != a.size:
        raise InvalidVoteError("style features need one row per vote")
    w = None if votes.weights is None else np.asarray(votes.weights, dtype=np.float64)
    if members.size == m:  # one component (the usual case): every row, no copies
        return fit_style(a, b, outcome_codes, style, n_models=m, weights=w, start=start)
    new = np.full(m, -1)
    new[members] = np.arange(members.size)
    rows = (new[a] >= 0) & (new[b] >= 0)
    sub_style = StyleFeatures(fa[rows], fb[rows], style.names)
    return fit_style(
        new[a[rows]], new[b[rows]], outcome_codes[rows], sub_style, n_models=members.size,
        weights=None if w is None else w[rows], start=start,
    )  # fmt: skip


def _style_params(fit: StyleFit, z: float, k: int) -> dict[str, object]:
    """The style coefficients as reported with the board (``k``: number of strengths)."""
    se = np.sqrt(np.maximum(np.diag(fit.cov), 0.0))
    return {
        "features": list(fit.names),
        "coefficients": fit.beta.tolist(),
        "lower": (fit.beta - z * se[k:]).tolist(),
        "upper": (fit.beta + z * se[k:]).tolist(),
        "feature_mean": fit.feature_mean.tolist(),
        "feature_std": fit.feature_std.tolist(),
        "units": "log-odds per standard deviation of (f_a - f_b) / (f_a + f_b + 1)",
        "converged": fit.converged,
    }
