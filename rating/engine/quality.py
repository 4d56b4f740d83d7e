"""What a board may honestly say about its data: its status, and the thresholds behind it.

A board is one of:

* ``"ok"``: the unregularised maximum-likelihood fit, with the requested intervals (sandwich or
  bootstrap).
* ``"regularised"``: too few decisive votes for the unregularised fit's intervals to be
  trusted, or a model (or group of models) never lost or never won against the rest, so the
  maximum-likelihood strengths are infinite. Strengths get a Gaussian prior N(0, PRIOR_SD^2) in
  log-odds (the posterior mode is reported) and the intervals are posterior (Laplace)
  intervals, (Fisher information + prior precision)^-1: with little data they are as wide as
  the prior, which is what is known. The sandwich is not used there: at a nearly separated
  fit every residual is close to zero, so it claims precision the data do not have.
* ``"withheld"``: no scores at all (every row's score is None), with the reason: fewer than two
  models with votes, no decisive vote (every vote a tie or both bad: nothing says which model
  is better), a fit that did not converge, or a style-controlled board with fewer decisive
  votes than it needs (style control is not regularised: it is withheld instead).
* ``"empty"``: no votes.

Thresholds. ``EVENTS_PER_PARAMETER`` = 10 decisive votes per estimated parameter: the
events-per-variable rule of logistic regression (Peduzzi et al. 1996; BT with ties as half a
win is a logistic regression), below which coefficients are biased and Wald/sandwich intervals
under-cover. A board of m models estimates m - 1 strengths; style control adds one coefficient
per style feature (4). Decisive votes are the events (a tie says nothing about which side is
better). ``PRIOR_SD`` = 1 log-odds (174 rating points): 95% of the prior mass lies within
+-340 points of the mean, wider than the spread of real arenas' top and bottom models around
their mean, so it only decides what the votes leave open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rating.engine.data import PairTable

EVENTS_PER_PARAMETER = 10
PRIOR_SD = 1.0  # log-odds
PRIOR_RIDGE = 1.0 / PRIOR_SD**2  # the prior's precision, as a ridge on theta
POINTS_PER_LOG_ODDS = 400.0 / math.log(10.0)

OK, REGULARISED, WITHHELD, EMPTY = "ok", "regularised", "withheld", "empty"
STATUSES: tuple[str, ...] = (OK, REGULARISED, WITHHELD, EMPTY)


@dataclass(frozen=True)
class BoardStatus:
    """How far a board can be trusted, and why.

    ``decisive_votes`` counts the votes with a winner in the rated group of models;
    ``needed_votes`` is what an unregularised (or style-controlled) fit of that group needs;
    ``prior_sd`` (log-odds) is set when the fit is regularised; ``intervals`` names the interval
    method actually used ("sandwich", "bootstrap", "posterior"; None without scores).
    """

    status: str
    reason: str | None = None
    decisive_votes: int = 0
    needed_votes: int | None = None
    prior_sd: float | None = None
    intervals: str | None = None

    @property
    def has_scores(self) -> bool:
        return self.status in (OK, REGULARISED)


def needed_decisive_votes(n_models: int, n_covariates: int = 0) -> int:
    """Decisive votes a fit of ``n_models`` strengths and ``n_covariates`` coefficients needs."""
    return EVENTS_PER_PARAMETER * max(n_models - 1 + n_covariates, 1)


def decisive_votes(table: PairTable) -> int:
    """Votes with a winner (not tie, not both bad) in ``table``."""
    return int(table.votes[:, 0].sum() + table.votes[:, 2].sum()) if table.n_pairs else 0


def withheld(reason: str, *, decisive: int = 0, needed: int | None = None) -> BoardStatus:
    return BoardStatus(WITHHELD, reason, decisive, needed)


def unbeaten_or_winless(table: PairTable, names: list[str]) -> list[str]:
    """Models that never lost (no loss, no tie) or never won (no win, no tie) in ``table``."""
    m = table.n_models
    w = table.votes
    wins = np.bincount(table.i, w[:, 0], m) + np.bincount(table.j, w[:, 2], m)
    losses = np.bincount(table.i, w[:, 2], m) + np.bincount(table.j, w[:, 0], m)
    ties = np.bincount(table.i, w[:, 1], m) + np.bincount(table.j, w[:, 1], m)
    extreme = (ties == 0) & ((losses == 0) | (wins == 0))
    return [names[k] for k in np.flatnonzero(extreme)]


def regularised_reason(
    *, decisive: int, needed: int, separated: bool, extremes: list[str], style: bool = False
) -> str:
    """The sentence a regularised board shows: why, and the prior it used."""
    why = []
    if decisive < needed:
        why.append(
            f"only {decisive} decisive vote{'s' if decisive != 1 else ''}; an unregularised fit "
            f"needs {needed} ({EVENTS_PER_PARAMETER} per model beyond the first)"
        )
    if separated:
        who = f" ({', '.join(extremes)})" if extremes else ""
        why.append(
            "some models never lost or never won against the rest" + who
            + ", so their maximum-likelihood strengths are infinite"
        )  # fmt: skip
    points = PRIOR_SD * POINTS_PER_LOG_ODDS
    return (
        "provisional: " + "; ".join(why) + ". Strengths are shrunk towards the mean by a "
        f"Gaussian prior (sd {PRIOR_SD:g} log-odds = {points:.0f} points) and the intervals are "
        "posterior intervals"
    )


def style_shortfall_reason(*, decisive: int, needed: int, n_models: int, n_features: int) -> str:
    return (
        f"not enough votes for a style-controlled board: {decisive} decisive "
        f"vote{'s' if decisive != 1 else ''}, needs {needed} ({EVENTS_PER_PARAMETER} per "
        f"parameter: {n_models - 1} model strengths + {n_features} style coefficients)"
    )


NO_PAIR = "not enough votes for a board: it needs votes between at least two models"
ALL_TIES = (
    "every counted vote is a tie or both bad, so no vote says which model is better; "
    "no scores until some vote has a winner"
)
STYLE_SEPARATED = (
    "no style-controlled board: some models never lost or never won against the rest, so "
    "their style-controlled strengths are infinite (style control is not regularised)"
)


def not_converged(what: str, iterations: int) -> str:
    return f"the {what} fit did not converge in {iterations} iterations; no scores are shown"
