"""End to end on the production stack: a real Celery worker with beat, uvicorn, Chromium."""

import time

import pytest

from rating import selectors
from tests.harness import wait_until
from tests.rating import factories as f


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_new_vote_reaches_the_leaderboard_within_seconds(celery_worker):
    a, b = f.llm("alpha"), f.llm("beta")
    f.votes(a, b, "a", 3)
    wait_until(
        lambda: (s := selectors.snapshot_latest()) and s.votes_counted == 3,
        timeout=20, what="the first snapshot",
    )  # fmt: skip
    start = time.monotonic()
    f.vote(f.battle(a, b), "b")
    wait_until(
        lambda: selectors.snapshot_latest().votes_counted == 4,
        timeout=10, what="the vote to show up in a snapshot",
    )  # fmt: skip
    assert time.monotonic() - start <= 5.0


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_leaderboard_page_in_chromium_desktop_and_phone(asgi_server, run_in_browser):
    from rating import services

    models = [
        f.llm(s, organisation=o, license=lic)
        for s, o, lic in [
            ("aurora-70b", "Aurora Labs", "Llama 3"), ("basalt-8b", "Basalt AI", "Apache-2.0"),
            ("cirrus-pro", "Cirrus", "Proprietary"), ("delta-mini", "Delta", "MIT"),
        ]
    ]  # fmt: skip
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if i < j:
                f.votes(a, b, "a", 6 - i, categories=["all", "coding"])
                f.votes(a, b, "b", 1 + j)
                f.votes(a, b, "tie", 1)
    services.leaderboard_recompute_full(detect_anomalies=False)

    async def scenario(page, shot):
        await page.goto(asgi_server.url + "/leaderboard/")
        await page.wait_for_selector("table.lb-table")
        await page.wait_for_function("document.querySelectorAll('svg.lb-plot').length === 3")
        await shot("desktop")
        before = await page.get_attribute("#board", "data-computed")
        return before

    before = run_in_browser(scenario)
    assert before

    async def phone(page, shot):
        await page.goto(asgi_server.url + "/leaderboard/?category=coding")
        await page.wait_for_selector("table.lb-table")
        await shot("phone")
        await page.select_option("select[name=category]", "all")
        await page.wait_for_selector('#board[data-category="all"]')
        return True

    assert run_in_browser(phone, viewport={"width": 390, "height": 844})
