from __future__ import annotations

from datetime import timedelta

import pytest

from arena.models import Vote
from preferences.selectors import (
    PairFilters,
    StreamPosition,
    expand_ranking,
    iter_pairs,
    position_of,
    ranking_from_annotation,
    snapshot_ids,
)
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def test_a_voted_battle_is_one_pair_with_every_turn():
    f.voted_battle(prompts=["hi", "and then?"], answers_a=["a1", "a2"], answers_b=["b1", "b2"])
    [pair] = list(iter_pairs(PairFilters()))
    assert pair.source == "arena"
    assert pair.prompts == ["hi", "and then?"]
    assert pair.response_a == ["a1", "a2"] and pair.response_b == ["b1", "b2"]
    assert (pair.model_a, pair.model_b, pair.winner) == ("alpha", "beta", "a")
    assert pair.judge == "f00dfeedcafebabe" and len(pair.judge) == 16


def test_pairs_come_in_vote_id_order_and_read_with_constant_queries(
    django_assert_max_num_queries,
):
    for _ in range(5):
        f.voted_battle()
    # One query however many rows (on PostgreSQL inside a transaction it is a raw named
    # cursor, which Django's query log does not see: at most one).
    with django_assert_max_num_queries(1):
        pairs = list(iter_pairs(PairFilters(sources=("arena",)), chunk_size=2))
    ids = [p.source_pk for p in pairs]
    assert ids == sorted(ids) and len(ids) == 5


def test_ties_both_bad_and_flagged_are_left_out_unless_asked():
    f.voted_battle(winner="a")
    f.voted_battle(winner="tie")
    f.voted_battle(winner="both_bad")
    f.voted_battle(winner="b", flags=["identity_leak"])
    assert [p.winner for p in iter_pairs(PairFilters())] == ["a"]
    everything = PairFilters(include_ties=True, include_both_bad=True, include_flagged=True)
    assert [p.winner for p in iter_pairs(everything)] == ["a", "tie", "both_bad", "b"]
    assert [p.winner for p in iter_pairs(PairFilters(include_ties=True))] == ["a", "tie"]


def test_filters_on_models_categories_language_and_dates():
    early = f.voted_battle(model_a="alpha", model_b="beta", categories=["all", "coding"])
    f.voted_battle(model_a="gamma", model_b="delta", language="de")
    f.voted_battle(model_a="beta", model_b="gamma", categories=["all", "long"])

    def outcome_ids(**kw):
        return [p.id for p in iter_pairs(PairFilters(**kw))]

    assert len(outcome_ids(models=("beta",))) == 2
    assert outcome_ids(categories=("coding",)) == [f"arena:{early.public_id}"]
    assert len(outcome_ids(categories=("coding", "long"))) == 2
    assert len(outcome_ids(language="de")) == 1
    first_vote = Vote.objects.order_by("created").first()
    assert len(outcome_ids(date_to=first_vote.created + timedelta(seconds=1))) == 1
    assert len(outcome_ids(date_from=first_vote.created + timedelta(seconds=1))) == 2
    assert outcome_ids(sources=("annotation",)) == []


def test_snapshot_excludes_later_votes():
    f.voted_battle()
    max_vote, _ = snapshot_ids()
    f.voted_battle()
    assert len(list(iter_pairs(PairFilters(max_vote_id=max_vote)))) == 1


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7])
def test_ranking_expands_to_k_choose_2_pairs_weighted_one_over_k_minus_1(k):
    pairs = list(expand_ranking(f.ranking(1, list(range(1, k + 1)))))
    assert len(pairs) == k * (k - 1) // 2
    assert all(p.weight == pytest.approx(1 / (k - 1)) for p in pairs)
    assert sum(p.weight for p in pairs) == pytest.approx(k / 2)
    assert all(p.winner == "a" for p in pairs)  # responses listed best first
    assert len({(p.model_a, p.model_b) for p in pairs}) == len(pairs)


def test_ranking_ties_stay_ties_and_margin_is_rank_distance():
    # responses 0 and 2 tied for first, 1 last
    pairs = {(p.model_a, p.model_b): p for p in expand_ranking(f.ranking(1, [1, 3, 1]))}
    assert pairs[("m0", "m2")].winner == "tie" and pairs[("m0", "m2")].margin == 0
    assert pairs[("m0", "m1")].winner == "a" and pairs[("m0", "m1")].margin == 2
    assert pairs[("m1", "m2")].winner == "b"
    assert [p.weight for p in expand_ranking(f.ranking(1, [1, 2]), weighted=False)] == [1.0]


def test_rankings_join_the_stream_after_votes_with_filters(rankings_source):
    f.voted_battle()
    rankings_source(
        [
            f.ranking(1, [1, 2, 3]),
            f.ranking(2, [1, 1]),
            f.ranking(3, [2, 1], trust=0.1),
            f.ranking(4, [1, 2], agreement=None),
        ]
    )
    pairs = list(iter_pairs(PairFilters()))
    assert [p.source for p in pairs] == ["arena"] + ["annotation"] * 5
    assert [p.id for p in pairs][1:4] == [
        "annotation:1:0-1",
        "annotation:1:0-2",
        "annotation:1:1-2",
    ]
    with_ties = list(iter_pairs(PairFilters(include_ties=True, sources=("annotation",))))
    assert len(with_ties) == 6
    trusted = list(iter_pairs(PairFilters(min_trust=0.5, sources=("annotation",))))
    assert {p.source_pk for p in trusted} == {1, 4}
    agreed = list(iter_pairs(PairFilters(min_agreement=0.5, sources=("annotation",))))
    assert {p.source_pk for p in agreed} == {1, 3}
    assert snapshot_ids()[1] == 4
    assert len(list(iter_pairs(PairFilters(max_annotation_id=1)))) == 4


def test_stream_resumes_after_any_position(rankings_source):
    for _ in range(3):
        f.voted_battle()
    rankings_source([f.ranking(1, [1, 2, 3]), f.ranking(2, [2, 1])])
    everything = list(iter_pairs(PairFilters()))
    for i, pair in enumerate(everything):
        rest = list(iter_pairs(PairFilters(), after=position_of(pair)))
        assert [p.id for p in rest] == [p.id for p in everything[i + 1 :]]
    assert [p.id for p in iter_pairs(PairFilters(), after=StreamPosition())] == [
        p.id for p in everything
    ]


def test_accepted_rankings_rows_are_adapted_with_history_ties_and_labels():
    raw = {
        "annotation_id": 9,
        "prompt": "Which?",
        "conversation": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there"},
        ],
        "responses": [
            {"index": 0, "text": "x", "llm_slug": "m1", "source_model": "m1-raw"},
            {"index": 1, "text": "y", "llm_slug": None, "source_model": "ext-model"},
            {"index": 2, "text": "z", "llm_slug": "m3", "source_model": ""},
        ],
        "ranking": [[1, 2], [0]],
        "labels": {"0": {"harmful": False}},
        "flags": [],
        "annotator": "ann-7",
        "trust": 0.7,
        "created": f.BASE_TIME,
    }
    ranking = ranking_from_annotation(raw)
    assert ranking.pk == 9 and ranking.ranks == [2, 1, 1]
    assert ranking.judge == "ann-7" and ranking.prompts == ["Hello", "Which?"]
    assert [r.model for r in ranking.responses] == ["m1", "ext-model", "m3"]
    assert ranking.responses[0].labels == {"harmful": False}
    pairs = list(expand_ranking(ranking))
    assert pairs[0].response_a == ["Hi there", "x"] and pairs[0].winner == "b"
    assert pairs[2].winner == "tie"
