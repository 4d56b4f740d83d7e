"""The releases page in real Chromium: create a release, watch it build (htmx polling), download."""

from __future__ import annotations

import pytest
from django.test import Client

from preferences.models import DatasetRelease
from tests import harness
from tests.preferences import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_releases_page_builds_a_release_with_live_progress(
    live_server, live_database_url, run_in_browser, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    user = f.researcher("browser-researcher")
    for i in range(150):
        f.voted_battle(prompts=[f"Browser prompt {i}"], winner="ab"[i % 2], model_b=f"m{i % 4}")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value

    async def scenario(page, shot):
        await page.context.add_cookies(
            [{"name": "sessionid", "value": session, "url": live_server.url}]
        )
        await page.goto(f"{live_server.url}/datasets/")
        await page.click("details summary")
        await page.fill("input[name=name]", "browser-prefs")
        await page.select_option("select[name=format]", "trl_conversational")
        await page.select_option("select[name=file_format]", "parquet")
        await shot("form")
        await page.click("details form button[type=submit]")
        await page.wait_for_selector("table.releases tr[id^=release-]")
        await shot("submitted")
        await page.wait_for_selector("table.releases td.downloads a", timeout=60_000)
        await shot("ready")
        links = await page.eval_on_selector_all(
            "table.releases td.downloads a", "els => els.map(e => e.textContent)"
        )
        return links

    with harness.celery_worker(live_database_url, beat=False, MEDIA_ROOT=str(settings.MEDIA_ROOT)):
        links = run_in_browser(scenario)
    assert links == ["train.parquet", "test.parquet", "README.md", "SHA256SUMS"]
    release = DatasetRelease.objects.get()
    assert release.status == "ready" and sum(release.row_counts.values()) == 150
