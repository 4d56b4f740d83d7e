"""A whole battle in Chromium on the production configuration: PostgreSQL, Redis, a real Celery
worker generating with the demo models, and the ASGI server (HTTP + WebSocket)."""

import pytest

from arena.models import Battle, Response, Vote
from arena.registry import demo_seed

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_consent_prompt_two_streams_second_turn_keyboard_vote_reveal_new_round(
    asgi_server, celery_worker, run_in_browser
):
    demo_seed(tokens_per_s=30, first_token_delay_s=1.0)
    base = asgi_server.url
    seen: dict[str, object] = {}

    async def scenario(page, shot):
        await page.goto(base + "/arena/")
        await shot("1-consent")
        await page.click("#accept-terms")
        await page.wait_for_selector("#consent", state="detached")
        await page.fill("#prompt", "How do rivers form? Give me the key points.")
        await page.click("#send")
        await page.wait_for_url("**/arena/b/**")
        assert await page.locator("#vote-a").is_disabled()  # nothing to vote on yet
        # The answers stream into their panes as plain text before they complete.
        await page.wait_for_function(
            "[...document.querySelectorAll('.pane pre.stream')].some(p => p.textContent.length > 40)"
        )
        await shot("2-streaming")
        await page.wait_for_selector("#vote-a:not([disabled])", timeout=60_000)
        await shot("3-first-turn-done")
        assert await page.locator(".pane .md").count() == 2  # markdown swapped in on completion
        # Second turn with Ctrl+Enter.
        await page.fill("#followup", "And how do deltas form?")
        await page.keyboard.press("Control+Enter")
        await page.wait_for_selector('section.turn[data-turn="1"]')
        await page.wait_for_selector("#vote-a:not([disabled])", timeout=60_000)
        await shot("4-second-turn-done")
        html_before_vote = await page.content()
        seen["before"] = html_before_vote
        # Vote by keyboard (focus is not in a text field).
        await page.locator("body").click(position={"x": 5, "y": 5})
        await page.keyboard.press("b")
        await page.wait_for_selector("#new-round")
        seen["after"] = await page.content()
        await shot("5-revealed")
        await page.keyboard.press("n")
        await page.wait_for_url(base + "/arena/")
        await page.wait_for_selector("#prompt")
        await shot("6-new-round")

    run_in_browser(scenario)

    battle = Battle.objects.select_related("model_a", "model_b").get()
    vote = Vote.objects.get(battle=battle)
    assert (vote.winner, vote.turns) == ("b", 2)
    assert Response.objects.filter(turn__battle=battle, state="done").count() == 4
    for model in (battle.model_a, battle.model_b):
        assert model.display_name not in seen["before"]
        assert model.display_name in seen["after"]


def test_reload_mid_stream_resumes_without_gaps_or_duplicates(
    asgi_server, celery_worker, run_in_browser
):
    demo_seed(tokens_per_s=12, first_token_delay_s=0.1)
    base = asgi_server.url
    samples: list[str] = []

    async def scenario(page, shot):
        await page.goto(base + "/arena/")
        await page.click("#accept-terms")
        await page.wait_for_selector("#consent", state="detached")
        await page.fill("#prompt", "Explain photosynthesis step by step.")
        await page.click("#send")
        await page.wait_for_url("**/arena/b/**")
        await page.wait_for_function(
            "[...document.querySelectorAll('.pane pre.stream')].some(p => p.textContent.length > 30)"
        )
        await page.reload()  # a network blip: the page comes back mid-stream
        await page.wait_for_function(
            "[...document.querySelectorAll('.pane pre.stream')].some(p => p.textContent.length > 60)"
        )
        await shot("resumed")
        samples.extend(
            await page.eval_on_selector_all(
                ".pane pre.stream",
                "els => els.map(e => e.closest('.pane').dataset.response + '|' + e.textContent)",
            )
        )
        await page.wait_for_selector("#vote-a:not([disabled])", timeout=90_000)
        await shot("complete")

    run_in_browser(scenario)
    assert samples
    for sample in samples:
        response_id, text = sample.split("|", 1)
        final = Response.objects.get(public_id=response_id).text
        assert final.startswith(text), (
            "the resumed stream must be an exact prefix of the saved text"
        )
