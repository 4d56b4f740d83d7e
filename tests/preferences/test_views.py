from __future__ import annotations

import pytest

from preferences import services
from preferences.models import ApiToken, DatasetRelease
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db


def test_releases_page_creates_a_release_and_lists_it(client, researcher, enqueued):
    f.voted_battle()
    client.force_login(researcher)
    page = client.get("/datasets/")
    assert page.status_code == 200 and b"Build release" in page.content
    response = client.post(
        "/datasets/",
        {
            "name": "web",
            "version": "1.0",
            "format": "trl_standard",
            "file_format": "parquet",
            "sources": ["arena"],
            "test_fraction": "0.1",
            "scrub_pii": "on",
        },
    )
    assert response.status_code == 302
    release = DatasetRelease.objects.get()
    assert (release.name, release.file_format, release.filters["sources"]) == (
        "web",
        "parquet",
        ["arena"],
    )
    assert enqueued == [("preferences.tasks.build_release", release.pk)]
    page = client.get("/datasets/").content.decode()
    assert 'hx-trigger="every 1s"' in page and "<progress" in page


def test_release_row_fragment_polls_until_done_then_shows_links(client, researcher, enqueued):
    f.voted_battle()
    client.force_login(researcher)
    release = services.release_create(user=researcher, name="r", version="1", format="hh")
    fragment = client.get(f"/datasets/releases/{release.public_id}/", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert html.lstrip().startswith("<tr") and "every 1s" in html
    services.release_build(release_id=release.pk)
    html = client.get(
        f"/datasets/releases/{release.public_id}/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "every 1s" not in html and "/datasets/files/" in html and "SHA256SUMS" in html
    page = client.get(f"/datasets/releases/{release.public_id}/").content.decode()
    assert "<html" in page and "sha256" in page


def test_release_form_errors_are_shown_and_change_nothing(client, researcher, enqueued):
    client.force_login(researcher)
    response = client.post(
        "/datasets/",
        {
            "name": "x",
            "version": "1",
            "format": "hh",
            "file_format": "jsonl",
            "sources": ["arena"],
            "test_fraction": "0.1",
            "include_ties": "on",
        },
    )
    assert response.status_code == 400
    assert b"cannot express ties" in response.content
    assert not DatasetRelease.objects.exists()


def test_token_settings_show_the_secret_once_and_revoke(client, researcher):
    client.force_login(researcher)
    response = client.post(
        "/datasets/settings/tokens/", {"name": "laptop", "scope": "read", "days": 30}
    )
    token = ApiToken.objects.get()
    html = response.content.decode()
    secrets = [w for w in html.split('"') if w.startswith("pa_") and len(w) > 20]
    assert len(secrets) == 1 and ApiToken.hash_secret(secrets[0]) == token.digest
    again = client.get("/datasets/settings/tokens/").content.decode()
    assert secrets[0] not in again and token.prefix in again
    client.post(f"/datasets/settings/tokens/{token.public_id}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_tokens_of_another_user_cannot_be_revoked(client, researcher, outsider):
    token, _ = services.token_create(user=researcher, name="mine")
    client.force_login(outsider)
    assert client.post(f"/datasets/settings/tokens/{token.public_id}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
