"""Public leaderboard API: JSON and CSV per category, model detail, schema, read-only."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from rating import services
from tests.rating import factories as f


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def board(db):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "a", 5, categories=["all", "coding"])
    f.votes(b, a, "tie", 1, categories=["all", "coding"])
    f.votes(b, c, "a", 4)
    f.votes(c, a, "b", 3)
    services.leaderboard_recompute_full(detect_anomalies=False)
    return a, b, c


ROW_KEYS = {
    "rank", "model", "name", "organisation", "license", "score", "lower", "upper", "ci_plus",
    "ci_minus", "votes", "component",
}  # fmt: skip


def test_leaderboard_json_has_rows_with_intervals(api, board, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        res = api.get("/api/v1/leaderboard/?category=coding")
    assert res.status_code == 200
    body = res.json()
    assert body["category"] == "coding" and body["style_control"] is False
    assert body["votes_counted"] == 6 and body["flagged_excluded"] == 0
    assert {r["model"] for r in body["rows"]} == {"alpha", "beta"}
    for row in body["rows"]:
        assert set(row) == ROW_KEYS
        assert row["lower"] <= row["score"] <= row["upper"]
    assert set(body["matrices"]) >= {"models", "predicted_win_rate", "battle_counts"}


def test_style_controlled_json(api, board):
    body = api.get("/api/v1/leaderboard/?style_control=true").json()
    assert body["style_control"] is True and body["method"] == "bradley-terry+style"


def test_leaderboard_csv(api, board):
    res = api.get("/api/v1/leaderboard/csv/?category=all")
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.content.decode())))
    assert len(rows) == 3 and set(rows[0]) == ROW_KEYS
    assert float(rows[0]["lower"]) <= float(rows[0]["score"]) <= float(rows[0]["upper"])


def test_unknown_category_is_a_clear_404(api, board):
    res = api.get("/api/v1/leaderboard/?category=nope")
    assert res.status_code == 404 and res.json()["code"] == "no_leaderboard"


def test_categories(api, board):
    assert api.get("/api/v1/leaderboard/categories/").json() == [
        {"category": "all", "label": "Overall"},
        {"category": "coding", "label": "Coding"},
    ]


def test_model_detail_has_head_to_head(api, board):
    body = api.get("/api/v1/leaderboard/models/alpha/").json()
    assert body["rating"]["model"] == "alpha"
    h2h = {r["opponent"]: r for r in body["head_to_head"]}
    assert h2h["beta"]["wins"] == 5 and h2h["beta"]["ties"] == 1 and h2h["beta"]["battles"] == 6
    assert h2h["gamma"]["wins"] == 3
    assert 0 < h2h["beta"]["predicted_win_rate"] < 1
    assert api.get("/api/v1/leaderboard/models/nobody/").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/api/v1/leaderboard/", "/api/v1/leaderboard/csv/", "/api/v1/leaderboard/models/alpha/"],
)
def test_outsider_can_read_but_not_write(api, board, path):
    assert api.get(path).status_code == 200
    for method in (api.post, api.put, api.delete):
        assert method(path, {}).status_code in (403, 405)


def test_endpoints_are_in_the_openapi_schema(api, db):
    schema = api.get("/api/v1/schema/?format=json").json()
    for path in (
        "/api/v1/leaderboard/", "/api/v1/leaderboard/csv/", "/api/v1/leaderboard/categories/",
        "/api/v1/leaderboard/models/{slug}/",
    ):  # fmt: skip
        assert path in schema["paths"]
