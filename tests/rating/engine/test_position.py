"""Position-locked voters: an always-A voter among honest ones is flagged, honest ones are not."""

import numpy as np
import pytest

from rating.engine import detect_anomalous_voters, detect_position_locked_voters
from rating.engine.position import smallest_testable


def _crowd(seed: int, honest: int = 60, per_voter: int = 60, bias: float = 0.0):
    """Honest voters with a mild first-position habit (``bias``), one always-A voter, and a
    voter who always backs the weaker model (caught by the sequential test, not this one)."""
    rng = np.random.default_rng(seed)
    m = 6
    theta = np.linspace(-1.5, 1.5, m)
    voters, a_all, b_all, o_all = [], [], [], []
    for v in range(honest + 2):
        a = rng.integers(0, m, per_voter)
        b = (a + rng.integers(1, m, per_voter)) % m
        p = 1 / (1 + np.exp(-(theta[a] - theta[b]) - bias))
        u = rng.random(per_voter)
        if v < honest:
            o = np.where(u < p - 0.1, 0, np.where(u < p + 0.1, 2, 1))
            name = f"honest{v}"
        elif v == honest:
            o = np.zeros(per_voter, dtype=np.int64)
            name = "always-a"
        else:
            o = np.where(theta[a] < theta[b], 0, 1)
            name = "contrarian"
        voters += [name] * per_voter
        a_all.append(a)
        b_all.append(b)
        o_all.append(o)
    return voters, np.concatenate(a_all), np.concatenate(b_all), np.concatenate(o_all)


def test_always_a_voter_is_flagged_and_honest_voters_are_not():
    voters, a, b, o = _crowd(seed=1)
    report = detect_position_locked_voters(voters, o, alpha=0.01)
    assert report.flagged == ["always-a"]
    assert report.p_values["always-a"] < 1e-6
    assert min(p for v, p in report.p_values.items() if v.startswith("honest")) > 0.01 / 62
    assert report.min_votes == smallest_testable(0.01, report.population_share, 0.25) == 20
    assert smallest_testable(0.01, 0.5, 0.25) == 19  # 2 * 0.75^19 < 0.01 < 2 * 0.75^18
    # The sequential test of the Chatbot Arena paper catches the contrarian, not the clicker.
    sequential = detect_anomalous_voters(voters, a, b, o, alpha=0.01)
    assert "contrarian" in sequential.flagged and "always-a" not in sequential.flagged


def test_honest_crowd_with_a_mild_first_position_habit_is_left_alone():
    voters, _, _, o = _crowd(seed=2, honest=200, per_voter=200, bias=0.4)
    report = detect_position_locked_voters(voters, o, alpha=0.01)
    assert report.population_share > 0.55  # the habit is real
    assert report.flagged == ["always-a"]


def test_always_b_is_position_locked_too_and_ties_do_not_count():
    voters = ["b-clicker"] * 40 + [f"h{k}" for k in range(400)]
    outcome = ["model_b"] * 40 + ["model_a", "model_b"] * 200
    report = detect_position_locked_voters(voters + ["tier"] * 50, outcome + ["tie"] * 50)
    assert report.flagged == ["b-clicker"]
    assert "tier" not in report.p_values  # no decisive vote: nothing to test


def test_too_few_votes_are_not_tested():
    voters = ["new"] * 10 + [f"h{k}" for k in range(100)]
    outcome = ["model_a"] * 10 + ["model_a", "model_b"] * 50
    report = detect_position_locked_voters(voters, outcome)
    assert report.flagged == [] and "new" not in report.p_values


def test_empty_and_mismatched_input():
    assert detect_position_locked_voters([], []).flagged == []
    with pytest.raises(ValueError, match="equal length"):
        detect_position_locked_voters(["x"], ["model_a", "model_b"])
