"""Demo provider: deterministic, distinct qualities, paced by the clock."""

from __future__ import annotations

import re

import pytest

from arena.providers import (
    DEMO_MODELS,
    BadRequest,
    Endpoint,
    GenerationParams,
    TextDelta,
    complete_sync,
)
from arena.providers.demo import demo_text, keywords
from tests.arena.providers.conftest import FakeClock, run_stream

PROMPT = [{"role": "user", "content": "How do glaciers shape mountain valleys over time?"}]
DEMO = Endpoint(kind="demo", name="demo")


def test_five_models_with_distinct_ranks():
    assert [m.slug for m in DEMO_MODELS] == [
        "demo-scholar",
        "demo-terse",
        "demo-verbose",
        "demo-generic",
        "demo-offtopic",
    ]
    assert sorted(m.quality_rank for m in DEMO_MODELS) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("slug", [m.slug for m in DEMO_MODELS])
def test_output_is_deterministic_for_seed_and_prompt(slug):
    assert demo_text(slug, PROMPT, seed=3) == demo_text(slug, PROMPT, seed=3)


def test_seed_varies_the_output():
    texts = {demo_text("demo-scholar", PROMPT, seed=s) for s in range(10)}
    assert len(texts) > 1


def test_qualities_differ_as_documented():
    kw = keywords(PROMPT[0]["content"])
    text = {m.slug: demo_text(m.slug, PROMPT, seed=0) for m in DEMO_MODELS}
    assert kw[:3] == ["glaciers", "shape", "mountain"]

    scholar = text["demo-scholar"]
    assert re.search(r"^## ", scholar, re.M) and re.search(r"^### ", scholar, re.M)
    assert re.search(r"^1\. ", scholar, re.M) and re.search(r"^- ", scholar, re.M)
    assert "**" in scholar and "```python" in scholar
    assert len(text["demo-terse"]) < 120 and "glaciers" in text["demo-terse"].lower()
    assert len(text["demo-verbose"]) > 3 * len(scholar)
    for slug in ("demo-generic", "demo-offtopic"):
        assert not any(k in text[slug].lower() for k in kw)


async def test_stream_paces_tokens_with_the_clock(runtime, clock: FakeClock):
    endpoint = Endpoint(
        kind="demo", name="demo", options={"tokens_per_s": 10, "first_token_delay_s": 0.5}
    )

    events, done = await run_stream(endpoint, runtime, GenerationParams(model="demo-terse"))

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == done.text
    assert clock.sleeps[0] == 0.5
    assert done.ttft_s == pytest.approx(0.5)
    assert done.latency_s == pytest.approx(0.5 + (len(deltas) - 1) / 10)


async def test_max_tokens_truncates_with_finish_reason_length(runtime):
    params = GenerationParams(model="demo-verbose", max_tokens=5)

    _, done = await run_stream(DEMO, runtime, params)

    assert done.completion_tokens == 5 and done.finish_reason == "length"


async def test_unknown_model_is_a_bad_request(runtime):
    with pytest.raises(BadRequest):
        await run_stream(DEMO, runtime, GenerationParams(model="demo-nope"))


def test_complete_sync_returns_the_whole_completion():
    done = complete_sync(DEMO, PROMPT, GenerationParams(model="demo-scholar", seed=1))

    assert done.text == demo_text("demo-scholar", PROMPT, seed=1)
    assert done.finish_reason == "stop" and done.attempts == 1
