import numpy as np
import pytest

from rating.engine import (
    InvalidVoteError,
    Outcome,
    UnknownOutcomeError,
    VoteCounts,
    aggregate,
    pair_table,
    parse_outcomes,
)
from rating.engine.data import components, mle_exists


def test_parse_outcomes_maps_arena_labels():
    codes = parse_outcomes(["model_a", "model_b", "tie", "tie (bothbad)", "both_bad"])
    assert codes.tolist() == [0, 1, 2, 3, 3]


def test_unknown_winner_label_error_names_the_row():
    with pytest.raises(UnknownOutcomeError, match=r"row 2: unknown winner label 'draw'"):
        parse_outcomes(["model_a", "tie", "draw", "model_b"])


def test_integer_outcome_out_of_range_names_the_row():
    with pytest.raises(UnknownOutcomeError, match="row 1"):
        parse_outcomes(np.array([0, 7]))


def test_aggregate_counts_cells_and_weights():
    counts = aggregate(
        [0, 0, 0, 1], [1, 1, 1, 0], ["model_a", "model_a", "tie", "model_a"],
        weights=[1.0, 2.0, 0.5, 1.0],
    )  # fmt: skip
    cells = {
        (int(a), int(b), int(o)): (int(v), float(w), float(w2))
        for a, b, o, v, w, w2 in zip(
            counts.a, counts.b, counts.outcome, counts.votes, counts.weight, counts.weight_sq,
            strict=True,
        )
    }  # fmt: skip
    assert cells == {
        (0, 1, Outcome.A): (2, 3.0, 5.0),
        (0, 1, Outcome.TIE): (1, 0.5, 0.25),
        (1, 0, Outcome.A): (1, 1.0, 1.0),
    }
    assert counts.total_votes == 4
    assert counts.votes_per_model().tolist() == [4, 4]


def test_pair_table_folds_orientation():
    counts = aggregate(
        [0, 1, 1, 0], [1, 0, 0, 1], ["model_a", "model_a", "tie (bothbad)", "model_b"]
    )
    table = pair_table(counts)
    # pair (0, 1): 0 won once (row 0), 1 won twice (rows 1 and 3), one both-bad tie
    assert table.votes.tolist() == [[1, 1, 2]]


def test_from_counts_equals_aggregating_rows():
    rows = aggregate([0, 0, 2, 2, 2], [1, 1, 0, 0, 1], [0, 0, 2, 1, 3], n_models=3)
    cells = VoteCounts.from_counts(3, [0, 2, 2, 2], [1, 0, 0, 1], [0, 2, 1, 3], [2, 1, 1, 1])
    for field in ("a", "b", "outcome", "votes", "weight", "weight_sq"):
        assert np.array_equal(getattr(rows, field), getattr(cells, field))


def test_self_battle_and_bad_index_are_rejected_with_row():
    with pytest.raises(InvalidVoteError, match="row 1: model 2 battles itself"):
        aggregate([0, 2], [1, 2], [0, 0])
    with pytest.raises(InvalidVoteError, match="row 0: model_b index 5"):
        aggregate([0], [5], [0], n_models=3)


def test_components_and_mle_existence():
    table = pair_table(aggregate([0, 1, 3], [1, 0, 4], [0, 0, 2], n_models=6))
    comp = components(table)
    assert comp[0] == comp[1] == 0  # most votes
    assert comp[3] == comp[4] == 1
    assert comp[2] not in (0, 1) and comp[5] not in (0, 1)
    assert mle_exists(pair_table(aggregate([0, 1], [1, 0], [0, 0])))
    assert not mle_exists(pair_table(aggregate([0, 1], [1, 0], [0, 1])))  # 0 never lost
