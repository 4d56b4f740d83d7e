"""High-level leaderboard: scores, intervals, ranks and matrices in one plain result.

Scores are 400 log10-odds (Elo-like): score = (400 / ln 10) theta + offset. By default the
offset makes the mean score of each connected component `mean_score` (1000); with
`anchor=(model_index, score)` the anchor model gets exactly that score. The anchor only
translates the board: intervals describe the mean-centred scores, so the anchor keeps an
honest interval instead of a zero-width one (FastChat's per-replicate anchoring moves the
anchor's noise onto every other model).

Disconnected comparison graphs are not an error here: each connected component is fitted on
its own, every model row carries its `component` (0 = most votes), ranks are computed within a
component, and `warnings` says that scores of different components are not comparable. Models
without votes are listed with score/lower/upper/rank None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm

from rating.engine.bootstrap import Sampler, bootstrap_params
from rating.engine.bt import TIE_MODELS, BTFit, fit_bt, sandwich_cov
from rating.engine.data import (
    InvalidVoteError,
    PairTable,
    RatingError,
    VoteCounts,
    aggregate,
    components,
    pair_table,
    parse_outcomes,
)
from rating.engine.matrices import battle_counts, observed_win_rate
from rating.engine.style import StyleFeatures, fit_style
from rating.engine.threads import single_blas

SCALE = 400.0 / math.log(10.0)  # natural log-odds -> rating points
CI_METHODS: tuple[str, ...] = ("sandwich", "bootstrap")


@dataclass(frozen=True)
class ModelRating:
    """One leaderboard row; score/lower/upper/rank are None for models without votes."""

    name: str
    index: int
    score: float | None
    lower: float | None
    upper: float | None
    rank: int | None
    votes: int
    component: int


@dataclass(frozen=True)
class Leaderboard:
    """Result of `leaderboard()`. Matrices are (m, m) in the input model order; NaN = unknown.

    `models` is sorted by component, rank, then descending score; unrated models come last.
    """

    models: list[ModelRating]
    model_names: list[str]
    predicted_win_rate: NDArray[np.float64]
    observed_win_rate: NDArray[np.float64]
    battle_counts: NDArray[np.int64]
    method: dict[str, object]
    params: dict[str, object]
    n_votes: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict: only dicts, lists, str, int, float, bool and None (NaN -> None)."""
        return {
            "models": [asdict(r) for r in self.models],
            "model_names": list(self.model_names),
            "predicted_win_rate": _plain(self.predicted_win_rate),
            "observed_win_rate": _plain(self.observed_win_rate),
            "battle_counts": self.battle_counts.tolist(),
            "method": _plain(self.method),
            "params": _plain(self.params),
            "n_votes": int(self.n_votes),
            "warnings": list(self.warnings),
        }


def _plain(x: object) -> object:
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


to_plain = _plain  # public name: JSON-ready copies of engine values


def rank_from_intervals(lower: NDArray[np.float64], upper: NDArray[np.float64]) -> NDArray:
    """rank_i = 1 + #{j : lower_j > upper_i} (the models that are surely better)."""
    lo_sorted = np.sort(lower)
    return 1 + lo_sorted.size - np.searchsorted(lo_sorted, upper, side="right")


def expected_score_matrix(
    theta: NDArray[np.float64], ties: str = "half", tie_param: float | None = None
) -> NDArray[np.float64]:
    """E[score of i vs j] = P(i wins) + P(tie) / 2 under the fitted tie model; diagonal NaN."""
    d = theta[:, None] - theta[None, :]
    if ties == "half" or tie_param is None:
        out = expit(d)
    elif ties == "davidson":
        w, lo = np.exp(d / 2), np.exp(-d / 2)
        out = (w + tie_param / 2) / (w + lo + tie_param)
    else:  # rao-kupper
        p_w, p_l = expit(d - tie_param), expit(-d - tie_param)
        out = p_w + (1 - p_w - p_l) / 2
    np.fill_diagonal(out, np.nan)
    return out


@single_blas
def leaderboard(
    model_names: Sequence[str],
    model_a: ArrayLike | None = None,
    model_b: ArrayLike | None = None,
    outcome: ArrayLike | None = None,
    *,
    weights: ArrayLike | None = None,
    counts: VoteCounts | None = None,
    style: StyleFeatures | None = None,
    ties: str = "half",
    ci: str = "sandwich",
    bootstrap_rounds: int = 1000,
    bootstrap_sampler: Sampler = "auto",
    level: float = 0.95,
    anchor: tuple[int, float] | None = None,
    mean_score: float = 1000.0,
    seed: int | None = 0,
) -> Leaderboard:
    """Fit BT and build the leaderboard.

    Input: per-vote arrays (`model_a`, `model_b` as indices into `model_names`, `outcome`
    labels, optional `weights`) OR pre-aggregated `counts`. Style control (`style`) needs the
    per-vote arrays, the half tie convention and ci="sandwich". `ci` is "sandwich" or
    "bootstrap" (count resampling, `bootstrap_rounds`, seeded by `seed`). `level` is the
    two-sided interval level. Raises `RatingError` subclasses on bad input (the message
    names the offending row for bad labels or indices).
    """
    names = list(model_names)
    m = len(names)
    _check_options(m, ties=ties, ci=ci, level=level, anchor=anchor)
    outcome_codes = None if outcome is None else parse_outcomes(outcome)
    counts = _vote_counts(m, model_a, model_b, outcome_codes, weights, counts)
    if style is not None:
        if model_a is None or model_b is None or outcome_codes is None:
            raise RatingError("style control needs per-vote arrays, not aggregated counts")
        if ties != "half" or ci != "sandwich":
            raise RatingError("style control supports ties='half' and ci='sandwich' only")

    table = pair_table(counts)
    comp = components(table)
    options = _FitOptions(
        ties=ties, ci=ci, level=level, z=float(norm.ppf(0.5 + level / 2)),
        rounds=bootstrap_rounds, sampler=bootstrap_sampler, seed=seed,
    )  # fmt: skip
    votes = None if style is None else _Votes(model_a, model_b, outcome_codes, weights, style)
    est = _fit_components(table, comp, options, votes)
    est.warnings += _coverage_warnings(names, comp, est.theta, counts.total_votes)
    offset = _offsets(names, comp, est, anchor, mean_score)
    score = SCALE * est.theta + offset
    lo_s, hi_s = SCALE * est.lower + offset, SCALE * est.upper + offset
    rank = _ranks(comp, est.theta, lo_s, hi_s)
    rows = [
        ModelRating(
            name=names[k],
            index=k,
            score=_number(score[k]),
            lower=_number(lo_s[k]),
            upper=_number(hi_s[k]),
            rank=None if rank[k] < 0 else int(rank[k]),
            votes=int(v),
            component=int(comp[k]),
        )
        for k, v in enumerate(counts.votes_per_model())
    ]
    rows.sort(key=lambda r: (r.score is None, r.component, r.rank or 0, -(r.score or 0.0), r.index))
    tie_param = est.params["tie_param"] if ties != "half" else None
    predicted = expected_score_matrix(est.theta, ties, tie_param)  # type: ignore[arg-type]
    predicted[comp[:, None] != comp[None, :]] = np.nan
    est.params["converged"] = all(f.converged for f in est.fits)
    return Leaderboard(
        models=rows,
        model_names=names,
        predicted_win_rate=predicted,
        observed_win_rate=observed_win_rate(table),
        battle_counts=battle_counts(table),
        method=_method(names, options, style is not None, anchor, mean_score),
        params=est.params,
        n_votes=counts.total_votes,
        warnings=est.warnings,
    )


def _check_options(
    m: int, *, ties: str, ci: str, level: float, anchor: tuple[int, float] | None
) -> None:
    if ties not in TIE_MODELS:
        raise RatingError(f"unknown tie model {ties!r}; expected one of {TIE_MODELS}")
    if ci not in CI_METHODS:
        raise RatingError(f"unknown interval method {ci!r}; expected one of {CI_METHODS}")
    if not 0 < level < 1:
        raise RatingError("level must be in (0, 1)")
    if anchor is not None and not 0 <= anchor[0] < m:
        raise RatingError(f"anchor model index {anchor[0]} not in [0, {m})")


def _vote_counts(
    m: int,
    model_a: ArrayLike | None,
    model_b: ArrayLike | None,
    outcome_codes: NDArray | None,
    weights: ArrayLike | None,
    counts: VoteCounts | None,
) -> VoteCounts:
    """``counts`` checked against the model list, or the per-vote arrays aggregated."""
    if counts is not None:
        if counts.n_models != m:
            raise RatingError(f"counts cover {counts.n_models} models but {m} names were given")
        return counts
    if model_a is None or model_b is None or outcome_codes is None:
        raise RatingError("pass model_a, model_b and outcome arrays, or counts")
    return aggregate(model_a, model_b, outcome_codes, n_models=m, weights=weights)


@dataclass(frozen=True)
class _FitOptions:
    """How to fit and bound each component: tie model, interval method and level (z is the
    normal quantile of the level), bootstrap rounds, sampler and seed."""

    ties: str
    ci: str
    level: float
    z: float
    rounds: int
    sampler: Sampler
    seed: int | None


@dataclass(frozen=True)
class _Votes:
    """The per-vote arrays a style-controlled fit reads."""

    model_a: ArrayLike
    model_b: ArrayLike
    outcome_codes: NDArray
    weights: ArrayLike | None
    style: StyleFeatures


@dataclass
class _Estimates:
    """Strengths and their interval bounds per model (natural log-odds, NaN = unrated), the
    reported parameters, the plain fits and the warnings so far."""

    theta: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    params: dict[str, object]
    fits: list[BTFit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fit_components(
    table: PairTable, comp: NDArray, options: _FitOptions, votes: _Votes | None
) -> _Estimates:
    """Fit every connected component of two or more models on its own."""
    m = table.n_models
    est = _Estimates(
        theta=np.full(m, np.nan), lower=np.full(m, np.nan), upper=np.full(m, np.nan),
        params={"tie_model": options.ties, "tie_param": None, "style": None},
    )  # fmt: skip
    for c in range(int(comp.max()) + 1 if m else 0):
        members = np.flatnonzero(comp == c)
        if members.size < 2:
            continue  # a lone model (no votes) has no score
        sub, _ = table.subset(members)
        if votes is not None:
            try:  # the plain fit (O(pairs)) is a close start: fewer passes over the votes
                start = fit_bt(sub, ties="half").theta
            except RatingError:
                start = None
            _fit_style_component(members, m, votes, options.z, est, start)
        else:
            _fit_plain_component(c, members, sub, options, est)
    return est


def _fit_plain_component(
    c: int, members: NDArray[np.int64], sub: PairTable, options: _FitOptions, est: _Estimates
) -> None:
    """Fit BT on one component's pair table; writes into ``est``."""
    comp_ties = options.ties
    if options.ties != "half" and sub.weight[:, 1].sum() <= 0:
        est.warnings.append(f"component {c} has no ties; fitted with ties='half'")
        comp_ties = "half"
    fit = fit_bt(sub, ties=comp_ties)
    est.fits.append(fit)
    if fit.ridge > 0:
        est.warnings.append(
            f"component {c}: some model never lost (or never won), so the exact MLE is "
            f"infinite; a ridge of {fit.ridge} (prior sd {1 / math.sqrt(fit.ridge):.0f} "
            "log-odds) keeps its score finite"
        )
    est.theta[members] = fit.theta
    lo, hi = _intervals(
        sub, fit, options.ci, options.z, options.level, options.rounds, options.sampler,
        options.seed,
    )  # fmt: skip
    est.lower[members], est.upper[members] = lo, hi
    if c == 0 and fit.tie_param is not None:
        est.params["tie_param"] = fit.tie_param


def _coverage_warnings(
    names: list[str], comp: NDArray, theta: NDArray[np.float64], total_votes: int
) -> list[str]:
    """Warnings about what the board cannot compare: components, no votes, unrated models."""
    warnings = []
    if (np.bincount(comp, minlength=1) >= 2).sum() > 1:
        warnings.append(
            "the comparison graph is disconnected: each component is fitted separately and "
            "scores of different components are not comparable"
        )
    if total_votes == 0:
        warnings.append("no votes: no model can be rated")
    unrated = [names[k] for k in range(len(names)) if np.isnan(theta[k])]
    if unrated and total_votes:
        warnings.append(f"models without a score (no votes): {', '.join(unrated)}")
    return warnings


def _offsets(
    names: list[str],
    comp: NDArray,
    est: _Estimates,
    anchor: tuple[int, float] | None,
    mean_score: float,
) -> NDArray[np.float64]:
    """Per-model score offset: ``mean_score``, or what puts the anchor at its score (over the
    anchor's component). An unrated anchor falls back to the mean, with a warning."""
    offset = np.full(len(names), mean_score)
    if anchor is not None:
        k, target = anchor
        if np.isnan(est.theta[k]):
            est.warnings.append(f"anchor model {names[k]} has no score; using mean {mean_score}")
        else:
            offset[comp == comp[k]] = target - SCALE * est.theta[k]
    return offset


def _ranks(
    comp: NDArray, theta: NDArray[np.float64], lower: NDArray[np.float64], upper: NDArray
) -> NDArray:
    """Ranks within each component from the score intervals; -1 for unrated models."""
    rank = np.full(theta.size, -1)
    for c in range(int(comp.max()) + 1 if theta.size else 0):
        members = np.flatnonzero((comp == c) & ~np.isnan(theta))
        if members.size:
            rank[members] = rank_from_intervals(lower[members], upper[members])
    return rank


def _number(x: np.floating) -> float | None:
    return None if np.isnan(x) else float(x)


def _method(
    names: list[str],
    options: _FitOptions,
    style_control: bool,
    anchor: tuple[int, float] | None,
    mean_score: float,
) -> dict[str, object]:
    """How the board was computed, as stored with it."""
    return {
        "model": "bradley-terry",
        "ties": options.ties,
        "ci": options.ci,
        "level": options.level,
        "bootstrap_rounds": options.rounds if options.ci == "bootstrap" else None,
        "seed": options.seed,
        "style_control": style_control,
        "scale": 400,
        "base": 10,
        "anchor": (
            {"model": names[anchor[0]], "score": float(anchor[1])}
            if anchor is not None
            else {"mean": float(mean_score)}
        ),
    }


def _intervals(
    sub: PairTable,
    fit: BTFit,
    ci: str,
    z: float,
    level: float,
    rounds: int,
    sampler: Sampler,
    seed: int | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    m = sub.n_models
    if ci == "sandwich":
        se = np.sqrt(np.maximum(np.diag(sandwich_cov(sub, fit))[:m], 0.0))
        return fit.theta - z * se, fit.theta + z * se
    boot = bootstrap_params(sub, fit, rounds=rounds, seed=seed, sampler=sampler)[:, :m]
    q = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2], axis=0)
    return q[0], q[1]


def _fit_style_component(
    members: NDArray[np.int64],
    m: int,
    votes: _Votes,
    z: float,
    est: _Estimates,
    start: NDArray | None,
) -> None:
    """Fit style control on the votes inside one component; writes into ``est``."""
    outcome_codes, style = votes.outcome_codes, votes.style
    a = np.asarray(votes.model_a, dtype=np.int64)
    b = np.asarray(votes.model_b, dtype=np.int64)
    fa = np.asarray(style.features_a, dtype=np.float64)
    fb = np.asarray(style.features_b, dtype=np.float64)
    if fa.shape[0] != a.size or fb.shape[0] != a.size:
        raise InvalidVoteError("style features need one row per vote")
    w = None if votes.weights is None else np.asarray(votes.weights, dtype=np.float64)
    if members.size == m:  # one component (the usual case): every row, no copies
        fit = fit_style(
            a, b, outcome_codes, style, n_models=m, weights=w, start=start
        )  # fmt: skip
    else:
        new = np.full(m, -1)
        new[members] = np.arange(members.size)
        rows = (new[a] >= 0) & (new[b] >= 0)
        sub_style = StyleFeatures(fa[rows], fb[rows], style.names)
        fit = fit_style(
            new[a[rows]], new[b[rows]], outcome_codes[rows], sub_style, n_models=members.size,
            weights=None if w is None else w[rows], start=start,
        )  # fmt: skip
    k = members.size
    se = np.sqrt(np.maximum(np.diag(fit.cov), 0.0))
    est.theta[members] = fit.theta
    est.lower[members] = fit.theta - z * se[:k]
    est.upper[members] = fit.theta + z * se[:k]
    if est.params.get("style") is None:  # report the main component's coefficients
        est.params["style"] = {
            "features": list(fit.names),
            "coefficients": fit.beta.tolist(),
            "lower": (fit.beta - z * se[k:]).tolist(),
            "upper": (fit.beta + z * se[k:]).tolist(),
            "feature_mean": fit.feature_mean.tolist(),
            "feature_std": fit.feature_std.tolist(),
            "units": "log-odds per standard deviation of (f_a - f_b) / (f_a + f_b + 1)",
            "converged": fit.converged,
        }
