"""What the OpenAPI schema promises and schemathesis found the API not keeping: each a 400 or a
JSON error where the API used to answer 200 or an HTML page."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from preferences import services
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> APIClient:
    researcher = f.researcher()
    _, secret = services.token_create(user=researcher, name="t", scope="read")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def test_an_unrouted_api_address_is_a_json_404(client):
    response = client.get("/api/v1/annotations/tasks/not-a-uuid/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


def test_a_page_address_that_does_not_exist_stays_an_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("size", ["0", "-5", "501", "x", "2.5"])
def test_cursor_lists_refuse_page_size_out_of_bounds(client, size):
    response = client.get(f"/api/v1/models/?page_size={size}")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["page_size"]


def test_cursor_lists_take_page_size_within_bounds(client):
    for size in ("1", "500"):
        assert client.get(f"/api/v1/models/?page_size={size}").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "include_ties=yes",
        "include_flagged=null",
        "include_ties=",
        "date_from=",
        "min_trust=",
        "source=",
        "source=arena,",
    ],
)
def test_pair_filters_refuse_what_the_schema_does_not_allow(client, query):
    response = client.get(f"/api/v1/pairs/?{query}")
    assert response.status_code == 400, query
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize(
    "query", ["include_ties=true", "include_ties=0", "min_agreement=7e160", "min_trust=-1e-74"]
)
def test_pair_filters_take_every_value_the_schema_allows(client, query):
    assert client.get(f"/api/v1/pairs/?{query}").status_code == 200, query


def test_leaderboard_csv_errors_are_json():
    response = APIClient().get("/api/v1/leaderboard/csv/?category=no-such-category")
    assert response.status_code in (400, 404)
    assert response["Content-Type"].startswith("application/json")
    assert "code" in response.json()


@pytest.mark.parametrize("query", ["winner=", "created_before=", "winner=nobody"])
def test_battle_filters_refuse_empty_or_unknown_values(client, query):
    response = client.get(f"/api/v1/battles/?{query}")
    assert response.status_code == 400, query
