import pytest
import yaml
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def test_schema_is_valid_openapi_3(client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert "/api/v1/me/" in spec["paths"]


def test_swagger_and_redoc_pages_use_vendored_assets(client):
    for url in ("/api/v1/docs/", "/api/v1/redoc/"):
        html = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn." not in html and "unpkg" not in html


def test_unauthenticated_request_gets_the_error_shape(client):
    response = client.get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }


def test_bad_request_gets_the_error_shape_with_fields_and_changes_nothing(client):
    user = User.objects.create_user("researcher", password="pw-12345-long")
    client.force_login(user)
    response = client.post(
        "/api/v1/tokens/", {"name": "", "scope": "root"}, content_type="application/json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"name", "scope"}
    assert user.api_tokens.count() == 0


def test_malformed_json_gets_the_error_shape(client):
    client.force_login(User.objects.create_user("r2", password="pw-12345-long"))
    response = client.post("/api/v1/tokens/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
