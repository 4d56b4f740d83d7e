import numpy as np
import pytest

from rating.engine import online_elo


def test_online_elo_hand_example():
    # K=4: A wins at equal ratings -> +2/-2; tie at 1002 vs 998 -> E = 1/(1+10^-0.01);
    # then model 1 (as A) loses to model 0.
    ratings = online_elo([0, 0, 1], [1, 1, 0], ["model_a", "tie", "model_b"], n_models=2)
    e_tie = 1 / (1 + 10 ** (-4 / 400))
    r0 = 1002 + 4 * (0.5 - e_tie)
    r1 = 2000 - r0
    e1 = 1 / (1 + 10 ** ((r0 - r1) / 400))
    assert ratings[0] == pytest.approx(r0 + 4 * e1)
    assert ratings[1] == pytest.approx(r1 - 4 * e1)


def test_online_elo_parameters():
    ratings = online_elo([0], [1], ["model_a"], n_models=3, k=32, initial=1500)
    assert ratings.tolist() == [1516.0, 1484.0, 1500.0]
    assert np.sum(online_elo([0, 1], [1, 2], [0, 2], n_models=3)) == pytest.approx(3000)
