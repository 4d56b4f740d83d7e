"""Pure metrics against published and hand-computed values."""

from __future__ import annotations

import math

import pytest
import scipy.stats

from annotations import quality

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders x 12
# units with missing values. Published: nominal .743, ordinal .815, interval .849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_alpha_matches_krippendorff_published_example(level: str, expected: float) -> None:
    units = list(zip(*KRIPPENDORFF_2011, strict=True))
    assert quality.krippendorff_alpha(units, level) == pytest.approx(expected, abs=5e-4)


def test_alpha_is_one_for_perfect_agreement_and_nan_without_variation() -> None:
    assert quality.krippendorff_alpha([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)
    assert math.isnan(quality.krippendorff_alpha([[1, 1], [1, 1]]))
    assert math.isnan(quality.krippendorff_alpha([[1], [2]]))  # nothing pairable


def test_alpha_hand_computed_two_coders_nominal() -> None:
    # units (a,a) (a,b) (b,b): coincidences o_aa=2, o_ab=o_ba=1, o_bb=2; n=6, n_a=n_b=3
    # D_o = 2/6, D_e = 2*3*3/(6*5) = 0.6 -> alpha = 1 - (5*2)/(18) = 0.444...
    assert quality.krippendorff_alpha([[0, 0], [0, 1], [1, 1]], "nominal") == pytest.approx(4 / 9)


def test_kendall_w_hand_computed() -> None:
    # 3 raters, 4 objects: rank sums 4, 6, 8, 12; mean 7.5; S = 12.25+2.25+0.25+20.25 = 35
    # W = 12*35 / (9 * 60) = 0.7777...
    m = [[1, 2, 3, 4], [2, 1, 3, 4], [1, 3, 2, 4]]
    assert quality.kendall_w(m) == pytest.approx(35 * 12 / (9 * 60))


def test_kendall_w_with_ties_matches_friedman() -> None:
    m = [[1, 2.5, 2.5, 4], [1.5, 1.5, 3, 4], [2, 1, 3.5, 3.5], [1, 2, 3, 4]]
    chi2 = scipy.stats.friedmanchisquare(*zip(*m, strict=True)).statistic
    assert quality.kendall_w(m) == pytest.approx(chi2 / (len(m) * (len(m[0]) - 1)))
    assert quality.kendall_w([[1, 2, 3]] * 5) == pytest.approx(1.0)


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    a = [1, 2, 2, 4, 5]
    b = [2, 1, 3, 3, 5]
    assert quality.kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    assert quality.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert quality.kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0


def test_ranks_give_mid_ranks_to_ties() -> None:
    assert quality.ranks([[2], [0, 1]], 3) == [2.5, 2.5, 1.0]


def test_ranked_pairs_condorcet_winner_and_cycle() -> None:
    # 0 beats 1 (2:1), 0 beats 2 (2:1), 1 vs 2 split
    rankings = [[[0], [1], [2]], [[1], [2], [0]], [[0], [2], [1]]]
    assert quality.ranked_pairs(rankings, 3) == [[0], [1], [2]]
    # a Condorcet cycle with margins 3 (A>B), 2 (B>C), 1 (C>A): C>A is not locked
    cyc = [[[0], [1], [2]]] * 3 + [[[1], [2], [0]]] * 2 + [[[2], [0], [1]]] * 2
    assert quality.ranked_pairs(cyc, 3) == [[0], [1], [2]]


def test_ranked_pairs_keeps_unseparated_responses_tied() -> None:
    assert quality.ranked_pairs([[[0, 1], [2]], [[1, 0], [2]]], 3) == [[0, 1], [2]]


def test_ranked_pairs_weights_can_flip_the_outcome() -> None:
    rs = [[[0], [1]], [[1], [0]], [[1], [0]]]
    assert quality.ranked_pairs(rs, 2) == [[1], [0]]
    assert quality.ranked_pairs(rs, 2, weights=[5, 1, 1]) == [[0], [1]]


def test_validate_ranking_refuses_bad_shapes() -> None:
    for bad in ([], [[0], [0, 1]], [[0], [5]], [[0]], [[0], []], [["a"], [1]], "x"):
        with pytest.raises(ValueError):
            quality.validate_ranking(bad, 2)
    assert quality.validate_ranking([[1], [0]], 2) == [[1], [0]]


def test_trust_rewards_gold_agreement_and_shrinks_small_samples() -> None:
    good = quality.trust_score([1, 1, 1, 1], [1, 1])
    bad = quality.trust_score([-1, -1, -1, -1], [-1, -1])
    assert good > 0.75 > 0.5 > 0.25 > bad
    assert quality.trust_score([], []) == pytest.approx(0.5)
    assert 0.5 < quality.trust_score([1], []) < good


def test_top_choice_and_ranking_from_scores() -> None:
    assert quality.top_choice_correct([[1], [0]], [[1, 2], [0]])
    assert not quality.top_choice_correct([[0, 1], [2]], [[1], [0, 2]])
    assert quality.ranking_from_scores([3, 5, 3]) == [[1], [0, 2]]
