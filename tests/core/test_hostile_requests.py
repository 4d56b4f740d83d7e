"""Hostile requests get a clear 4xx (the API's JSON shape under /api/) and change nothing."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient

from arena.models import Battle
from preferences import services as preference_services
from preferences.models import DatasetRelease
from tests.preferences import factories

pytestmark = pytest.mark.django_db


def _writer() -> APIClient:
    user = factories.researcher("hostile-writer")
    _, secret = preference_services.token_create(user=user, name="t", scope="write", days=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    body = json.loads(response.content)
    assert body["code"] == code and body["message"]
    return body


def test_trace_and_invented_methods_get_405_with_allow(client):
    for method in ("TRACE", "CONNECT", "PROPFIND"):
        response = client.generic(method, "/api/v1/models/")
        _json_error(response, 405, "method_not_allowed")
        assert "GET" in response["Allow"] and "TRACE" not in response["Allow"]
    page = client.generic("TRACE", "/arena/")
    assert page.status_code == 405 and b"Method not allowed" in page.content


@pytest.mark.parametrize(
    "query",
    ["model=%00", "category=a%01b", "cursor=%00", "x%00=1", "date_from=2026-01-01%1b"],
)
def test_control_characters_in_a_query_are_a_400_before_any_view(client, query):
    _json_error(client.get(f"/api/v1/models/?{query}"), 400, "invalid")
    _json_error(client.get(f"/api/v1/pairs/?{query}"), 400, "invalid")
    assert client.get(f"/leaderboard/?{query}").status_code == 400


def test_ordinary_whitespace_in_a_query_passes(client):
    assert client.get("/api/v1/models/?q=a%09b%0Ac").status_code == 200


def test_a_nul_in_a_form_field_is_a_400_and_starts_no_battle(client):
    session = client.session
    session["arena_consent"] = True
    session.save()
    response = client.post("/arena/", {"prompt": "hello\x00world"})
    assert response.status_code == 400
    assert b"control character" in response.content
    assert Battle.objects.count() == 0


@pytest.mark.parametrize(
    "cursor", [b"p=-1", b"p=not-a-date", b"o=-5&p=x", b"r=1&p=2026-13-45T99:00:00Z"]
)
def test_a_crafted_cursor_is_a_400_invalid_cursor(client, cursor):
    encoded = base64.b64encode(cursor).decode()
    _json_error(client.get("/api/v1/models/", {"cursor": encoded}), 400, "invalid_cursor")


def test_deep_json_and_control_characters_in_json_are_400_and_build_nothing():
    client = _writer()
    cases = [
        "[" * 50_000 + "]" * 50_000,  # was a RecursionError
        '{"name": "x", "filters": {"a": ' + "[" * 40 + "1" + "]" * 40 + "}}",
        json.dumps({"name": "bad\u0000name", "version": "1"}),
        json.dumps({"name": "ok", "version": "1", "filters": {"model": ["a\u0007"]}}),
    ]
    for body in cases:
        response = client.post("/api/v1/releases/", body, content_type="application/json")
        body = _json_error(response, 400, "parse_error")
    assert DatasetRelease.objects.count() == 0


def test_an_oversized_form_is_refused_before_any_view(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/arena/", {"prompt": "x" * 5000})
    assert response.status_code == 413
    assert Battle.objects.count() == 0
