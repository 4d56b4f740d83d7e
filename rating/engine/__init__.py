"""Rating engine: Bradley-Terry leaderboards from pairwise votes. No Django imports.

Takes and returns numpy arrays and plain dataclasses. The Django side calls `leaderboard()`
and stores `Leaderboard.to_dict()` as JSON.
"""

from rating.engine.active import PairWeights, active_sampling_weights
from rating.engine.anomaly import AnomalyReport, detect_anomalous_voters
from rating.engine.bootstrap import bootstrap_params
from rating.engine.bt import BTFit, fit_bt, sandwich_cov
from rating.engine.data import (
    DisconnectedGraphError,
    InvalidVoteError,
    Outcome,
    PairTable,
    RatingError,
    UnknownOutcomeError,
    VoteCounts,
    aggregate,
    components,
    pair_table,
    parse_outcomes,
)
from rating.engine.elo import online_elo
from rating.engine.leaderboard import (
    SCALE,
    Leaderboard,
    ModelRating,
    expected_score_matrix,
    leaderboard,
    rank_from_intervals,
)
from rating.engine.matrices import battle_counts, observed_win_rate, predicted_win_rate
from rating.engine.position import PositionReport, detect_position_locked_voters
from rating.engine.quality import BoardStatus
from rating.engine.style import STYLE_FEATURES, StyleFeatures, StyleFit, fit_style

__all__ = [
    "SCALE",
    "STYLE_FEATURES",
    "AnomalyReport",
    "BTFit",
    "BoardStatus",
    "DisconnectedGraphError",
    "InvalidVoteError",
    "Leaderboard",
    "ModelRating",
    "Outcome",
    "PairTable",
    "PairWeights",
    "PositionReport",
    "RatingError",
    "StyleFeatures",
    "StyleFit",
    "UnknownOutcomeError",
    "VoteCounts",
    "active_sampling_weights",
    "aggregate",
    "battle_counts",
    "bootstrap_params",
    "components",
    "detect_anomalous_voters",
    "detect_position_locked_voters",
    "expected_score_matrix",
    "fit_bt",
    "fit_style",
    "leaderboard",
    "observed_win_rate",
    "online_elo",
    "pair_table",
    "parse_outcomes",
    "predicted_win_rate",
    "rank_from_intervals",
    "sandwich_cov",
]
