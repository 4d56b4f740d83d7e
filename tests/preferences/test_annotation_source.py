"""Rankings from the real annotations app (``accepted_rankings``) flow into pairs and exports."""

from __future__ import annotations

import pytest

from annotations import services as annotation_services
from preferences.exports import ExportOptions, iter_rows
from preferences.selectors import PairFilters, iter_pairs
from tests.annotations import factories as af
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def _submit(project, annotator, ranking):
    assignment = annotation_services.assignment_claim(project=project, annotator=annotator)
    data = af.answer(assignment.item, ranking, p=project)
    return annotation_services.annotation_submit(
        assignment=assignment, annotator=annotator, data=data
    )


def test_submitted_rankings_become_pairs_with_ties_and_snapshot():
    ann1, ann2 = af.user(), af.user()
    project = af.project(annotators=[ann1, ann2], k=3, overlap=2)
    af.items(project, 1)
    first = _submit(project, ann1, [[0], [1], [2]])
    _submit(project, ann2, [[2], [0, 1]])
    f.voted_battle()

    pairs = list(iter_pairs(PairFilters(include_ties=True)))
    assert [p.source for p in pairs] == ["arena"] + ["annotation"] * 6
    by_annotation = [p for p in pairs if p.source == "annotation" and p.source_pk == first.pk]
    assert [(p.model_a, p.model_b, p.winner) for p in by_annotation] == [
        ("m0", "m1", "a"),
        ("m0", "m2", "a"),
        ("m1", "m2", "a"),
    ]
    assert all(p.weight == 0.5 and p.judge and p.trust is not None for p in by_annotation)
    second = [p for p in pairs if p.source_pk != first.pk and p.source == "annotation"]
    assert [p.winner for p in second] == ["tie", "b", "b"]
    assert [p.winner for p in iter_pairs(PairFilters(sources=("annotation",)))] == ["a"] * 3 + [
        "b",
        "b",
    ]
    snapshot = PairFilters(include_ties=True, max_annotation_id=first.pk)
    assert {p.source_pk for p in iter_pairs(snapshot) if p.source == "annotation"} == {first.pk}


def test_raw_rankings_export_keeps_labels_and_ties():
    annotator = af.user()
    project = af.project(annotators=[annotator], k=3, overlap=1)
    af.items(project, 1)
    _submit(project, annotator, [[1], [0, 2]])
    options = ExportOptions(format="rankings")
    filters = PairFilters()
    rows = [row for _, row in iter_rows(filters, options)]
    [row] = rows
    assert [r["rank"] for r in row["responses"]] == [2, 1, 2]
    assert all(r["labels"] != "{}" for r in row["responses"])
    assert row["prompt"][-1]["role"] == "user"
