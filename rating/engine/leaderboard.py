"""High-level leaderboard: scores, intervals, ranks and matrices in one plain result.

Scores are 400 log10-odds (Elo-like): score = (400 / ln 10) theta + offset. By default the
offset makes the mean score of the rated models `mean_score` (1000); with
`anchor=(model_index, score)` the anchor model gets exactly that score. The anchor only
translates the board: intervals describe the mean-centred scores, so the anchor keeps an
honest interval instead of a zero-width one (FastChat's per-replicate anchoring moves the
anchor's noise onto every other model).

Every board carries a `status` (`rating.engine.quality`): "ok" (unregularised fit),
"regularised" (few votes or a model never lost or never won: a stated prior and posterior
intervals), "withheld" (no scores, with the reason) or "empty". Disconnected comparison graphs
are not an error: only the largest connected group (component 0) is rated, every model row
carries its `component`, and `warnings` names the models left unrated and why. Models without
votes are listed with score/lower/upper/rank None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm

from rating.engine.bootstrap import Sampler
from rating.engine.bt import TIE_MODELS
from rating.engine.data import (
    RatingError,
    VoteCounts,
    aggregate,
    components,
    pair_table,
    parse_outcomes,
)
from rating.engine.fitting import Estimates, FitOptions, Votes, fit_main
from rating.engine.matrices import battle_counts, observed_win_rate
from rating.engine.quality import BoardStatus
from rating.engine.style import StyleFeatures
from rating.engine.threads import single_blas

SCALE = 400.0 / math.log(10.0)  # natural log-odds -> rating points
CI_METHODS: tuple[str, ...] = ("sandwich", "bootstrap")
# What each tie model's strengths mean: the half-win and Davidson / Rao-Kupper strengths are
# different quantities (with many ties the half-win ones are compressed towards 0), so a board
# always says which one it reports.
TIE_MEANINGS: dict[str, str] = {
    "half": "a tie or both-bad vote is half a win for each side (Chatbot Arena's convention); "
    "strengths are the log-odds of the expected score",
    "davidson": "Davidson's model: ties have their own probability nu; strengths are the "
    "log-odds of winning a decisive vote",
    "rao-kupper": "Rao-Kupper's model: a tie when the strength difference is within a "
    "threshold eta; strengths are not comparable with half-win ones",
}


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
    `status` says whether the scores are the unregularised fit, regularised (and why, with the
    prior), or withheld (every score None, and why).
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
    status: BoardStatus = field(default_factory=lambda: BoardStatus("empty", "no votes"))

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
            "status": asdict(self.status),
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
    options = FitOptions(
        ties=ties, ci=ci, level=level, z=float(norm.ppf(0.5 + level / 2)),
        rounds=bootstrap_rounds, sampler=bootstrap_sampler, seed=seed,
    )  # fmt: skip
    votes = None if style is None else Votes(model_a, model_b, outcome_codes, weights, style)
    est = fit_main(table, comp, names, options, votes)
    if est.status.reason is not None and est.status.status != "empty":  # whoever reads only
        # the warnings learns it too
        est.warnings.insert(0, est.status.reason)
    est.warnings += _coverage_warnings(names, comp, est.theta, counts.votes_per_model())
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
    est.params["converged"] = est.converged
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
        status=est.status,
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


def _coverage_warnings(
    names: list[str], comp: NDArray, theta: NDArray[np.float64], votes: NDArray[np.int64]
) -> list[str]:
    """Warnings about what the board cannot compare: other components, models without votes."""
    if not votes.sum():
        return ["no votes: no model can be rated"]
    warnings = []
    apart = [names[k] for k in np.flatnonzero((comp > 0) & (votes > 0))]
    if apart:
        warnings.append(
            "the comparison graph is disconnected: only the largest connected group of models "
            f"is rated; {', '.join(apart)} have votes only among themselves, so their scores "
            "could not be compared with the others"
        )
    unvoted = [names[k] for k in np.flatnonzero(votes == 0)]
    if unvoted:
        warnings.append(f"models without a score (no votes): {', '.join(unvoted)}")
    return warnings


def _offsets(
    names: list[str],
    comp: NDArray,
    est: Estimates,
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
    options: FitOptions,
    style_control: bool,
    anchor: tuple[int, float] | None,
    mean_score: float,
) -> dict[str, object]:
    """How the board was computed, as stored with it."""
    return {
        "model": "bradley-terry",
        "ties": options.ties,
        "ties_meaning": TIE_MEANINGS[options.ties],
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
