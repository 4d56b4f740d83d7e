"""One rule for every API endpoint: a missing, unknown, expired or revoked credential is 401 with
``WWW-Authenticate: Bearer``; a valid credential without the right is 403."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from preferences import services
from tests.preferences import factories

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("get", "/api/v1/me/"),
    ("get", "/api/v1/tokens/"),
    ("post", "/api/v1/tokens/"),
    ("post", f"/api/v1/tokens/{uuid.uuid4()}/revoke/"),
    ("get", "/api/v1/pairs/"),
    ("get", "/api/v1/battles/"),
    ("get", "/api/v1/releases/"),
    ("post", "/api/v1/releases/"),
    ("get", "/api/v1/annotations/projects/"),
    ("post", f"/api/v1/annotations/tasks/{uuid.uuid4()}/submit/"),
]


def _client(secret: str | None) -> APIClient:
    client = APIClient()
    if secret is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _bad_credentials() -> dict[str, str | None]:
    user = factories.researcher("auth-rules")
    _, revoked = services.token_create(user=user, name="revoked", scope="write", days=1)
    services.token_revoke(user=user, public_id=str(user.api_tokens.get(name="revoked").public_id))
    return {"none": None, "unknown": "pa_" + "x" * 40, "revoked": revoked}


@pytest.mark.parametrize("method,url", PROTECTED)
def test_no_or_bad_credentials_get_401_with_the_bearer_challenge(method, url):
    for name, secret in _bad_credentials().items():
        response = getattr(_client(secret), method)(url, {}, format="json")
        assert response.status_code == 401, (name, response.content[:200])
        assert response["WWW-Authenticate"] == "Bearer", name
        assert response.json()["code"] in ("not_authenticated", "authentication_failed")


def test_a_valid_token_without_the_right_gets_403():
    researcher = factories.researcher("reader")
    _, read = services.token_create(user=researcher, name="r", scope="read", days=1)
    assert _client(read).get("/api/v1/pairs/").status_code == 200
    writes = _client(read).post("/api/v1/releases/", {"name": "x"}, format="json")
    assert writes.status_code == 403 and writes.json()["code"] == "permission_denied"
    mints = _client(read).post("/api/v1/tokens/", {"name": "t"}, format="json")
    assert mints.status_code == 403 and "session" in mints.json()["message"]
    outsider = factories.outsider()
    _, plain = services.token_create(user=outsider, name="o", scope="read", days=1)
    assert _client(plain).get("/api/v1/pairs/").status_code == 403
