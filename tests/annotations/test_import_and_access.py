"""Import validation (all or nothing) and access: outsiders see nothing, annotators only their own."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotations import selectors, services
from annotations.models import Annotation, Item
from core.errors import ApplicationError
from tests.annotations import factories as f

pytestmark = pytest.mark.django_db


def _line(**kw) -> str:
    base = {"prompt": "Hi", "responses": ["a", "b", "c"]}
    base.update(kw)
    return json.dumps(base)


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (_line(prompt=""), "'prompt' is missing"),
    (_line(responses=["a", "b"]), "expected 3 responses"),
    (_line(responses=["a", " ", "c"]), "response 2 is empty"),
    (_line(responses=["a", 5, "c"]), "response 2 must be text"),
    (_line(gold="1>1>2"), "exactly once"),
    (_line(gold="x>y"), "gold must look like"),
    (_line(colour="red"), "unknown keys"),
    (_line(id="dup"), "repeats line"),
]


def test_import_reports_every_bad_line_and_imports_nothing() -> None:
    staff = f.user(is_staff=True)
    p = f.project()
    good = _line(id="dup")
    content = "\n".join([good, *(line for line, _ in BAD_LINES)])
    with pytest.raises(ApplicationError) as err:
        services.items_import(project=p, user=staff, content=content, fmt="jsonl")
    errors = err.value.extra["errors"]
    assert [e["line"] for e in errors] == list(range(2, 2 + len(BAD_LINES)))
    for e, (_line_text, expected) in zip(errors, BAD_LINES, strict=True):
        assert expected in e["message"]
    assert Item.objects.count() == 0


def test_import_jsonl_and_csv_with_gold_and_models() -> None:
    staff = f.user(is_staff=True)
    p = f.project()
    n = services.items_import(
        project=p,
        user=staff,
        content=_line(
            id="q1", gold=[[2], [0, 1]], responses=[{"text": "x", "model": "m-a"}, "y", "z"]
        ),
        fmt="jsonl",
    )
    csv_text = "id,prompt,response_1,response_2,response_3,gold,topic\nq2,P,a,b,c,2>1=3,math\n"
    n += services.items_import(project=p, user=staff, content=csv_text.encode(), fmt="csv")
    assert n == 2
    gold = Item.objects.get(external_id="q2")
    assert (
        gold.is_gold and gold.gold_ranking == [[1], [0, 2]] and gold.metadata == {"topic": "math"}
    )
    assert Item.objects.get(external_id="q1").responses.get(index=0).source_model == "m-a"
    with pytest.raises(ApplicationError):  # the same id again
        services.items_import(project=p, user=staff, content=csv_text, fmt="csv")
    assert Item.objects.count() == 2


def test_csv_missing_column_and_non_utf8_are_refused() -> None:
    staff = f.user(is_staff=True)
    p = f.project()
    with pytest.raises(ApplicationError) as err:
        services.items_import(project=p, user=staff, content="prompt,response_1\nx,y\n", fmt="csv")
    assert "missing columns" in err.value.extra["errors"][0]["message"]
    with pytest.raises(ApplicationError):
        services.items_import(project=p, user=staff, content=b"\xff\xfe", fmt="csv")


def test_only_managers_import() -> None:
    ann = f.user()
    p = f.project(annotators=[ann])
    with pytest.raises(ApplicationError):
        services.items_import(project=p, user=ann, content=_line(), fmt="jsonl")


@pytest.fixture
def world():
    ann, other, reviewer, outsider = (
        f.user("ann"),
        f.user("other"),
        f.user("rev"),
        f.user("outsider"),
    )
    p = f.project(annotators=[ann, other], reviewers=[reviewer], overlap=2)
    f.items(p, 2)
    f.items(p, 1, gold=True)
    mine = services.assignment_claim(project=p, annotator=ann)
    theirs = services.assignment_claim(project=p, annotator=other)
    ann_obj = services.annotation_submit(
        assignment=theirs, annotator=other, data=f.answer(theirs.item, [[2], [1], [0]])
    )
    return {"p": p, "ann": ann, "other": other, "reviewer": reviewer, "outsider": outsider,
            "mine": mine, "theirs": theirs, "annotation": ann_obj}  # fmt: skip


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_outsider_gets_404_on_every_page_and_api(world) -> None:
    p, c = world["p"], _client(world["outsider"])
    slug = p.slug
    pages = [
        reverse("annotations:dashboard", args=[slug]),
        reverse("annotations:items", args=[slug]),
        reverse("annotations:item", args=[slug, world["mine"].item.public_id]),
        reverse("annotations:review", args=[slug]),
        reverse("annotations:import", args=[slug]),
        reverse("annotations:generate", args=[slug]),
        reverse("annotations:task", args=[world["mine"].public_id]),
    ]
    for url in pages:
        assert c.get(url).status_code == 404, url
    assert c.post(reverse("annotations:next", args=[slug])).status_code == 404
    assert (
        c.post(
            reverse("annotations:task", args=[world["mine"].public_id]), {"action": "submit"}
        ).status_code
        == 404
    )
    api = "/api/v1/annotations/"
    assert c.get(api + "projects/").json()["results"] == []
    for method, url, body in [
        ("post", f"{api}projects/{slug}/next/", {}),
        ("post", f"{api}projects/{slug}/import/", {"content": _line()}),
        ("get", f"{api}projects/{slug}/quality/", None),
        ("get", f"{api}tasks/{world['mine'].public_id}/", None),
        ("post", f"{api}tasks/{world['mine'].public_id}/submit/", {}),
        ("post", f"{api}tasks/{world['mine'].public_id}/draft/", {}),
        ("post", f"{api}tasks/{world['mine'].public_id}/skip/", {"reason": "unsure"}),
        (
            "post",
            f"{api}annotations/{world['annotation'].public_id}/review/",
            {"decision": "rejected"},
        ),
    ]:
        r = (
            getattr(c, method)(url, body, content_type="application/json")
            if body is not None
            else c.get(url)
        )
        assert r.status_code == 404, url
    # anonymous: login redirect / 403
    anon = Client()
    assert anon.get(reverse("annotations:dashboard", args=[slug])).status_code == 302
    assert anon.get(api + "projects/").status_code in (401, 403)


def test_annotator_sees_only_own_task_and_never_gold_or_others(world) -> None:
    c = _client(world["ann"])
    assert c.get(reverse("annotations:task", args=[world["theirs"].public_id])).status_code == 404
    page = c.get(reverse("annotations:task", args=[world["mine"].public_id]))
    assert page.status_code == 200
    assert b"gold" not in page.content.lower().replace(b"golden", b"")
    assert c.get(reverse("annotations:dashboard", args=[world["p"].slug])).status_code == 404
    assert c.get(reverse("annotations:review", args=[world["p"].slug])).status_code == 404
    body = c.get(f"/api/v1/annotations/tasks/{world['mine'].public_id}/").json()
    assert "gold" not in json.dumps(body) and "model" not in body["responses"][0]


def test_reviewer_sees_dashboard_and_rejects_which_hides_from_accepted_rankings(world) -> None:
    c = _client(world["reviewer"])
    p = world["p"]
    assert c.get(reverse("annotations:dashboard", args=[p.slug])).status_code == 200
    assert c.get(reverse("annotations:review", args=[p.slug])).status_code == 200
    assert len(list(selectors.accepted_rankings(project=p))) == 1
    r = c.post(
        f"/api/v1/annotations/annotations/{world['annotation'].public_id}/review/",
        {"decision": "rejected"},
        content_type="application/json",
    )
    assert r.status_code == 200
    assert Annotation.objects.get(pk=world["annotation"].pk).review == "rejected"
    assert list(selectors.accepted_rankings(project=p)) == []
    q = c.get(f"/api/v1/annotations/projects/{p.slug}/quality/").json()
    assert q["annotators"][0]["rejected"] == 1


def test_task_page_submit_and_draft_through_the_html_form(world) -> None:
    c = _client(world["ann"])
    a = world["mine"]
    ids = {r.index: str(r.public_id) for r in a.item.responses.all()}
    form = {"ranking": json.dumps([[ids[1]], [ids[0], ids[2]]]), "time_spent_ms": "5000"}
    for i in ids.values():
        form[f"label:{i}:helpfulness"] = "4"
        form[f"label:{i}:harmless"] = "1"
    draft = c.post(
        reverse("annotations:task", args=[a.public_id]),
        {**form, "action": "draft"},
        HTTP_HX_REQUEST="true",
    )
    assert draft.status_code == 200 and b"Draft saved" in draft.content
    r = c.post(
        reverse("annotations:task", args=[a.public_id]),
        {**form, "action": "submit", "flags": ["pii"]},
    )
    assert r.status_code == 302
    ann = Annotation.objects.get(assignment=a)
    assert ann.status == "submitted" and ann.ranking == [[1], [0, 2]] and ann.flags == ["pii"]
    assert ann.labels["0"] == {"helpfulness": 4, "harmless": 1}


def test_accepted_rankings_shape(world) -> None:
    (row,) = selectors.accepted_rankings(project=world["p"])
    assert set(row) >= {"prompt", "responses", "ranking", "labels", "annotator", "trust", "created"}
    assert row["ranking"] == [[2], [1], [0]]
    assert row["annotator"].startswith("ann-") and 0 <= row["trust"] <= 1
    assert row["responses"][0]["source_model"] == "m0"


def test_empty_state_for_user_without_projects() -> None:
    r = _client(f.user()).get(reverse("annotations:queue"))
    assert r.status_code == 200 and b"No annotation projects yet" in r.content
