from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.utils import timezone
from rest_framework.test import APIClient

from preferences import services
from preferences.models import ApiToken, DatasetRelease
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def bearer(user, scope="read", days=90) -> tuple[APIClient, ApiToken, str]:
    token, secret = services.token_create(user=user, name="t", scope=scope, days=days)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client, token, secret


@pytest.fixture
def votes():
    for i in range(7):
        f.voted_battle(prompts=[f"q{i}"], winner="ab"[i % 2], model_b=f"m{i % 3}")
    f.voted_battle(prompts=["tied"], winner="tie")


@pytest.fixture
def release(researcher, enqueued, votes):
    r = services.release_create(user=researcher, name="prefs", version="1", format="hh")
    services.release_build(release_id=r.pk)
    r.refresh_from_db()
    return r


# --- tokens -------------------------------------------------------------------------------


def test_tokens_are_hashed_at_rest(researcher):
    _, token, secret = bearer(researcher)
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret not in (stored.digest, stored.prefix) and stored.digest == ApiToken.hash_secret(
        secret
    )
    assert not any(secret in str(v) for v in ApiToken.objects.values().get().values())


def test_read_token_cannot_write_and_write_token_can(researcher, enqueued, votes):
    body = {"name": "x", "version": "1", "format": "hh"}
    reader, _, _ = bearer(researcher, "read")
    response = reader.post("/api/v1/releases/", body, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert not DatasetRelease.objects.exists()
    writer, _, _ = bearer(researcher, "write")
    assert writer.post("/api/v1/releases/", body, format="json").status_code == 201


def test_revoked_and_expired_tokens_are_refused(researcher):
    client, token, _ = bearer(researcher)
    assert client.get("/api/v1/pairs/").status_code == 200
    services.token_revoke(user=researcher, public_id=token.public_id)
    response = client.get("/api/v1/pairs/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
    client, token, _ = bearer(researcher)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/pairs/").status_code == 401


def test_throttling_is_per_token(researcher, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_THROTTLE_TOKEN = "3/min"
    one, _, _ = bearer(researcher)
    two, _, _ = bearer(researcher)
    assert [one.get("/api/v1/pairs/").status_code for _ in range(3)] == [200] * 3
    response = one.get("/api/v1/pairs/")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled" and response.json()["retry_after"] > 0
    assert two.get("/api/v1/pairs/").status_code == 200
    cache.clear()


# --- outsiders ------------------------------------------------------------------------------

RESEARCHER_ENDPOINTS = [
    ("get", "/api/v1/pairs/"),
    ("get", "/api/v1/battles/"),
    ("get", "/api/v1/releases/"),
    ("post", "/api/v1/releases/"),
    ("get", "/api/v1/releases/{id}/"),
    ("post", "/api/v1/releases/{id}/publish/"),
    ("get", "/api/v1/releases/{id}/download/train.jsonl"),
]


@pytest.mark.parametrize(("method", "url"), RESEARCHER_ENDPOINTS)
def test_an_outsider_is_refused_on_every_endpoint(method, url, release, outsider):
    url = url.format(id=release.public_id)
    anonymous = APIClient()
    assert getattr(anonymous, method)(url).status_code in (401, 403)
    client, _, _ = bearer(outsider, "write")
    response = getattr(client, method)(url, {}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "You do not have access to preference datasets.",
    }
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer pa_not-a-token")
    assert getattr(bad, method)(url).status_code == 401


def test_a_token_carries_its_users_dataset_permission_as_has_perm_reads_it(outsider, votes):
    from django.contrib.auth.models import Group, Permission

    client, _, _ = bearer(outsider)
    assert client.get("/api/v1/pairs/").status_code == 403
    group = Group.objects.create(name="researchers")
    group.permissions.add(Permission.objects.get(codename="access_datasets"))
    outsider.groups.add(group)
    assert client.get("/api/v1/pairs/").status_code == 200  # through a group
    outsider.groups.clear()
    assert client.get("/api/v1/pairs/").status_code == 403  # taken away: the next request
    outsider.is_superuser = True
    outsider.save()
    assert client.get("/api/v1/pairs/").status_code == 200


def test_outsider_pages_and_links(client, release, outsider):
    client.force_login(outsider)
    page = client.get("/datasets/")
    assert page.status_code == 200 and b"prefs" not in page.content
    assert client.get(f"/datasets/releases/{release.public_id}/").status_code == 404
    assert client.get(f"/datasets/public/{release.public_id}/train.jsonl").status_code == 404
    assert client.post("/datasets/", {"name": "x"}).status_code == 403
    client.logout()
    assert client.get("/datasets/settings/tokens/").status_code == 302


# --- endpoints ------------------------------------------------------------------------------


def test_pairs_browse_with_filters_and_cursor(researcher, votes):
    client, _, _ = bearer(researcher)
    seen, url = [], "/api/v1/pairs/?page_size=3"
    while url:
        body = client.get(url).json()
        seen += [p["id"] for p in body["results"]]
        url = body["next"]
    assert len(seen) == 7 == len(set(seen))
    tied = client.get("/api/v1/pairs/?include_ties=true&model=beta").json()["results"]
    assert [p["outcome"] for p in tied] == ["tie"]
    only_m1 = client.get("/api/v1/pairs/?model=m1").json()["results"]
    assert {p["model_b"] for p in only_m1} == {"m1"}
    bad = client.get("/api/v1/pairs/?date_from=yesterday&page_size=0&source=nope")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert client.get("/api/v1/pairs/?cursor=!!!").json()["code"] == "invalid_cursor"


def test_pairs_page_query_count_is_fixed(researcher, votes, django_assert_max_num_queries):
    client, _, _ = bearer(researcher)
    client.get("/api/v1/pairs/?source=arena")
    # the token with its user and dataset permission, the page (no query per pair)
    with django_assert_max_num_queries(2):
        assert client.get("/api/v1/pairs/?source=arena&page_size=50").status_code == 200


def test_battles_list_with_turns_and_pinned_queries(researcher, votes, django_assert_num_queries):
    client, _, _ = bearer(researcher)
    client.get("/api/v1/battles/")
    with django_assert_num_queries(4):  # token with permission, battles, turns, responses
        body = client.get("/api/v1/battles/?page_size=50").json()
    assert len(body["results"]) == 8
    first = body["results"][0]
    assert first["turns"][0]["response_a"].startswith("Answer A")
    assert client.get("/api/v1/battles/?winner=tie").json()["results"][0]["winner"] == "tie"


def test_models_are_public(client, votes):
    body = client.get("/api/v1/models/").json()
    assert {m["slug"] for m in body["results"]} >= {"alpha", "beta", "m0"}


def test_release_lifecycle_through_the_api(researcher, enqueued, votes):
    client, _, _ = bearer(researcher, "write")
    response = client.post(
        "/api/v1/releases/",
        {
            "name": "api-prefs",
            "version": "2.0",
            "format": "arena_battles",
            "file_format": "jsonl.gz",
            "filters": {"include_ties": True, "models": ["m1", "beta"]},
            "test_fraction": 0.2,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    rid = response.json()["id"]
    assert response.json()["status"] == "pending" and response.json()["files"] == []
    services.release_build(release_id=DatasetRelease.objects.get(public_id=rid).pk)
    detail = client.get(f"/api/v1/releases/{rid}/").json()
    assert detail["status"] == "ready" and sum(detail["row_counts"].values()) == 3
    urls = {x["name"]: x["url"] for x in detail["files"]}
    assert set(urls) == {"train.jsonl.gz", "test.jsonl.gz", "README.md", "SHA256SUMS"}
    signed = APIClient().get(urls["SHA256SUMS"].replace("http://testserver", ""))
    assert signed.status_code == 200
    download = client.get(f"/api/v1/releases/{rid}/download/README.md")
    assert b"".join(download.streaming_content).startswith(b"---\nlicense: cc-by-4.0")
    again = client.post(
        "/api/v1/releases/",
        {"name": "api-prefs", "version": "2.0", "format": "hh"},
        format="json",
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    ties = client.post(
        "/api/v1/releases/",
        {"name": "t", "version": "1", "format": "hh", "filters": {"include_ties": True}},
        format="json",
    )
    assert ties.json()["code"] == "format_cannot_express_ties"


def test_every_documented_endpoint_answers_as_its_schema_says(client, release, researcher):
    """Each GET in the schema is called and its JSON checked against the documented response."""
    from openapi_schema_validator import OAS30Validator

    spec = yaml.safe_load(
        client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi").content
    )
    ours = {
        path: ops
        for path, ops in spec["paths"].items()
        if path.split("/")[3] in {"pairs", "battles", "models", "releases", "me"}
    }
    assert {"/api/v1/pairs/", "/api/v1/battles/", "/api/v1/models/", "/api/v1/releases/"} <= set(
        ours
    )
    api, _, _ = bearer(researcher)

    def resolve(schema):
        if "$ref" in schema:
            name = schema["$ref"].split("/")[-1]
            return resolve(spec["components"]["schemas"][name])
        return {k: (resolve(v) if isinstance(v, dict) else v) for k, v in schema.items()}

    checked = 0
    for path, ops in ours.items():
        if "get" not in ops:
            continue
        url = path.replace("{public_id}", str(release.public_id)).replace("{name}", "README.md")
        response = api.get(url)
        assert response.status_code == 200, (path, response.content[:200])
        content = ops["get"]["responses"]["200"]["content"]
        if "application/json" not in content:
            continue
        schema = {**content["application/json"]["schema"], "components": spec["components"]}
        OAS30Validator(schema).validate(response.json())
        checked += 1
    assert checked >= 5
