"""Reading the task form into an answer (``answer_from_post``) and checking it against the item."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.http import QueryDict

from annotations import services
from annotations.services import AnswerInput, answer_clean, answer_from_post
from core.errors import ApplicationError
from tests.annotations import factories as f

pytestmark = pytest.mark.django_db


def _post(fields: list[tuple[str, str]]) -> QueryDict:
    return QueryDict(urlencode(fields))


@pytest.fixture
def task():
    """An assignment of a 3-response item, and its response ids by index."""
    ann = f.user()
    p = f.project(annotators=[ann])
    (item,) = f.items(p, 1)
    a = services.assignment_claim(project=p, annotator=ann)
    assert a.item_id == item.id
    return a, {r.index: str(r.public_id) for r in item.responses.all()}


def test_a_complete_form_becomes_an_answer_the_item_accepts(task) -> None:
    a, ids = task
    post = _post(
        [
            ("action", "submit"),
            ("ranking", json.dumps([[ids[2]], [ids[0], ids[1]]])),
            *[(f"label:{ids[i]}:helpfulness", str(i + 3)) for i in range(3)],
            *[(f"label:{ids[i]}:harmless", "yes" if i else "no") for i in range(3)],
            ("flags", "pii"),
            ("flags", "harmful"),
            ("flags", "pii"),
            ("comment", "close call"),
            ("time_spent_ms", "4200"),
        ]
    )
    answer = answer_from_post(post, assignment=a)
    assert answer == AnswerInput(
        ranking=[[ids[2]], [ids[0], ids[1]]],
        labels={ids[i]: {"helpfulness": str(i + 3), "harmless": "yes" if i else "no"} for i in range(3)},
        flags=["harmful", "pii"],
        comment="close call",
        time_spent_ms=4200,
    )  # fmt: skip
    clean = answer_clean(a.project, a.item, answer, final=True)
    assert clean.ranking == [[2], [0, 1]]
    assert clean.labels == {"0": {"helpfulness": 3, "harmless": 0}, "1": {"helpfulness": 4, "harmless": 1},
                            "2": {"helpfulness": 5, "harmless": 1}}  # fmt: skip
    assert (clean.flags, clean.comment, clean.time_spent_ms) == (
        ["harmful", "pii"],
        "close call",
        4200,
    )


def test_an_empty_draft_and_odd_times_are_read_leniently(task) -> None:
    a, _ids = task
    answer = answer_from_post(_post([("action", "draft"), ("time_spent_ms", "soon")]), assignment=a)
    assert answer == AnswerInput()
    big = answer_from_post(_post([("time_spent_ms", str(10**12))]), assignment=a)
    assert big.time_spent_ms == 24 * 3600 * 1000
    clean = answer_clean(a.project, a.item, answer, final=False)
    assert (clean.ranking, clean.labels) == ([], {})


def test_a_pairwise_choice_names_responses_by_their_place_on_the_page() -> None:
    ann = f.user()
    p = f.project(k=2, label_schema=[], annotators=[ann], blind=True)
    f.items(p, 1)
    a = services.assignment_claim(project=p, annotator=ann)
    a.display_order = [1, 0]  # the page shows response 1 as "A"
    ids = {r.index: str(r.public_id) for r in a.item.responses.all()}
    read = {c: answer_from_post(_post([("choice", c), ("ranking", "{not json")]), assignment=a)
            for c in ("a", "b", "tie")}  # fmt: skip
    assert read["a"].ranking == [[ids[1]], [ids[0]]]
    assert read["b"].ranking == [[ids[0]], [ids[1]]]
    assert read["tie"].ranking == [[ids[1], ids[0]]]
    assert answer_clean(p, a.item, read["a"], final=True).ranking == [[1], [0]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("ranking", "[[")], "The ranking must be a list."),
        ([("ranking", '{"a": 1}')], "The ranking must be a list."),
        ([("ranking", '["x"]')], "Invalid ranking: every group of the ranking must be a list."),
        ([("label:no-label-name", "3")], "Labels name an unknown response."),
        ([("flags", "pii"), ("flags", "boring")], "Unknown flag."),
        ([("comment", "x" * 5001)], "The comment must be text up to 5000 characters."),
    ],
)
def test_a_malformed_form_is_refused_with_a_domain_error(task, fields, message) -> None:
    a, _ids = task
    with pytest.raises(ApplicationError) as caught:
        answer_from_post(_post(fields), assignment=a)
    assert (caught.value.message, caught.value.code, caught.value.status) == (
        message, "invalid_answer", 400,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message", "code"),
    [
        (lambda ids: {"ranking": [["not-a-response"]]},
         "Invalid ranking: the ranking names a response that is not in this item.", "invalid_answer"),
        (lambda ids: {"ranking": [[ids[0]], [ids[1]]]},
         "Invalid ranking: the ranking must place each of the 3 responses exactly once.", "invalid_answer"),
        (lambda ids: {"labels": {"not-a-response": {}}}, "Labels name an unknown response.", "invalid_answer"),
        (lambda ids: {"labels": {ids[0]: {"stars": "3"}}}, "Unknown label 'stars'.", "invalid_answer"),
        (lambda ids: {"labels": {ids[0]: {"helpfulness": "many"}}},
         "Label 'helpfulness' must be a number.", "invalid_answer"),
        (lambda ids: {"labels": {ids[0]: {"helpfulness": "9"}}},
         "Label 'helpfulness' must be between 1 and 5.", "invalid_answer"),
        (lambda ids: {"labels": {ids[0]: {"helpfulness": "2"}}},
         "Give every label for every response (missing: harmless).", "labels_missing"),
    ],
)  # fmt: skip
def test_a_well_formed_answer_is_still_checked_against_the_item(
    task, change, message, code
) -> None:
    a, ids = task
    answer = services.answer_input({"ranking": [[ids[0]], [ids[1]], [ids[2]]], **change(ids)})
    with pytest.raises(ApplicationError) as caught:
        answer_clean(a.project, a.item, answer, final=True)
    assert (caught.value.message, caught.value.code) == (message, code)


def test_a_draft_may_be_partial_but_never_malformed(task) -> None:
    """Drafts are validated like submissions, except that responses may be missing: a draft
    that submit would reject as malformed (a response twice, more groups than responses) is
    refused and nothing is stored."""
    a, ids = task
    partial = AnswerInput(ranking=[[ids[1]], [], [ids[0]]])
    assert answer_clean(a.project, a.item, partial, final=False).ranking == [[1], [0]]
    for ranking, message in [
        ([[ids[0]], [ids[0]]], "more than once"),
        ([[ids[0], ids[0]]], "more than once"),
        ([[ids[0]]] * 10_000, "more groups than the 3 responses"),
    ]:
        with pytest.raises(ApplicationError, match=message):
            answer_clean(a.project, a.item, AnswerInput(ranking=ranking), final=False)
        with pytest.raises(ApplicationError):
            services.annotation_save_draft(
                assignment=a, annotator=a.annotator, data=AnswerInput(ranking=ranking)
            )
    a.refresh_from_db()
    assert not a.item.annotations.exists()
