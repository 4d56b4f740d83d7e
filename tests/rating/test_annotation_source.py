"""The annotation source view: accepted rankings become weighted pairs and their own snapshot."""

import pytest

from annotations import services as annotation_services
from annotations.models import ItemResponse
from arena.models import LLM, Provider
from rating import selectors, services
from rating.models import LeaderboardSnapshot
from tests.annotations import factories as af

pytestmark = pytest.mark.django_db


def _models(n: int) -> list[LLM]:
    provider = Provider.objects.create(name="ann-src", kind="demo")
    return [
        LLM.objects.create(
            slug=f"ann-m{i}", display_name=f"M{i}", provider=provider, provider_model_id=f"m{i}"
        )
        for i in range(n)
    ]


def _submit(project, annotator, ranking):
    assignment = annotation_services.assignment_claim(project=project, annotator=annotator)
    data = af.answer(assignment.item, ranking, p=project)
    return annotation_services.annotation_submit(
        assignment=assignment, annotator=annotator, data=data
    )


def test_rankings_expand_to_weighted_pairs_with_ties_and_an_annotation_snapshot():
    models = _models(3)
    ann1, ann2 = af.user(), af.user()
    project = af.project(annotators=[ann1, ann2], k=3, overlap=2)
    (item,) = af.items(project, 1)
    for response in ItemResponse.objects.filter(item=item):
        response.llm = models[response.index]
        response.save(update_fields=["llm"])
    _submit(project, ann1, [[0], [1], [2]])
    _submit(project, ann2, [[2], [0, 1]])

    a, b, o, w = selectors.annotation_pairs()
    m = [x.pk for x in models]
    pairs = sorted(zip(a, b, o, strict=True))
    assert pairs == sorted(
        [
            (m[0], m[1], 0),
            (m[0], m[2], 0),
            (m[1], m[2], 0),
            (m[2], m[0], 0),
            (m[2], m[1], 0),
            (m[0], m[1], 2),
        ]
    )
    assert len(set(w)) >= 1 and all(0 < x <= 0.5 for x in w)  # trust / (K - 1)

    services.leaderboard_recompute_full(detect_anomalies=False)
    snap = LeaderboardSnapshot.objects.filter(source="annotation").latest("id")
    assert {row["model"] for row in snap.rows} >= {"ann-m0", "ann-m1", "ann-m2"}
    for arena_snap in LeaderboardSnapshot.objects.filter(source="arena"):
        assert "ann-m0" not in {row["model"] for row in arena_snap.rows}  # never mixed in


def test_no_rankings_no_annotation_pairs():
    assert selectors.annotation_pairs() is None


def test_leaderboard_page_links_both_sources(client):
    page = client.get("/leaderboard/?source=annotation").content.decode()
    assert "Bradley–Terry scores from annotators' rankings" in page
    assert (
        'href="?source=arena"' in page and 'href="?source=annotation" aria-current="page"' in page
    )
