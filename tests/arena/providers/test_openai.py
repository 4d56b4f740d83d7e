"""OpenAI-compatible client against the fake server: happy path and every fault mode."""

from __future__ import annotations

import socket

import pytest

from arena.providers import (
    AuthenticationFailed,
    BadRequest,
    GenerationParams,
    MalformedStream,
    RateLimited,
    Restart,
    Runtime,
    TextDelta,
    Timeout,
    Timeouts,
    UpstreamError,
    complete,
    get_client,
)
from tests.arena.providers.conftest import (
    API_KEY,
    FakeClock,
    openai_endpoint,
    run_stream,
    visible_text,
)
from tests.fakes.fake_llm import DEFAULT_TEXT, Behaviour, FakeLLMServer

P = GenerationParams(model="m")


async def test_stream_assembles_deltas_and_records_usage_and_timings(fake_llm, runtime):
    params = GenerationParams(
        model="m",
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        system_prompt="Be brief.",
        extra_body={"reasoning_effort": "low"},
        seed=7,
    )
    endpoint = openai_endpoint(fake_llm, extra_headers={"X-Title": "arena"})

    events, done = await run_stream(endpoint, runtime, params)

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == done.text == DEFAULT_TEXT
    assert (done.prompt_tokens, done.completion_tokens) == (
        6,
        len(deltas),
    )  # 2 system + 4 user words
    assert done.finish_reason == "stop"
    assert done.attempts == 1
    assert done.ttft_s is not None and 0 <= done.ttft_s <= done.latency_s
    [request] = fake_llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["x-title"] == "arena"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request.body["messages"][1]["content"] == "Tell me about rivers"
    assert (request.body["temperature"], request.body["top_p"]) == (0.3, 0.9)
    assert (request.body["max_tokens"], request.body["seed"]) == (50, 7)
    assert request.body["reasoning_effort"] == "low"


async def test_json_answer_to_a_streaming_request_is_read_whole(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(json_response=True))

    events, done = await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert [e.text for e in events if isinstance(e, TextDelta)] == [DEFAULT_TEXT]
    assert done.text == DEFAULT_TEXT and done.completion_tokens == 13


async def test_429_is_retried_after_the_retry_after_delay(fake_llm, runtime, clock: FakeClock):
    fake_llm.behave("m", Behaviour(fault="status", status=429, retry_after="2", fail_first=1))

    _, done = await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert done.text == DEFAULT_TEXT and done.attempts == 2
    assert fake_llm.count(model="m") == 2
    assert clock.sleeps == [2.0]


async def test_retry_after_is_capped(fake_llm, runtime, clock: FakeClock):
    fake_llm.behave("m", Behaviour(fault="status", status=429, retry_after="3600", fail_first=1))
    endpoint = openai_endpoint(fake_llm, timeouts=Timeouts(total_s=120.0))

    await run_stream(endpoint, runtime, P)

    assert clock.sleeps == [runtime.retry.retry_after_cap_s]


async def test_429_that_persists_raises_rate_limited_after_max_retries(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="status", status=429, retry_after="1"))

    with pytest.raises(RateLimited) as excinfo:
        await run_stream(openai_endpoint(fake_llm, max_retries=2), runtime, P)

    assert fake_llm.count(model="m") == 3
    assert excinfo.value.status == 429 and excinfo.value.retry_after == 1.0


async def test_5xx_is_retried_with_growing_backoff(fake_llm, runtime, clock: FakeClock):
    fake_llm.behave("m", Behaviour(fault="status", status=503, fail_first=2))

    _, done = await run_stream(openai_endpoint(fake_llm, max_retries=3), runtime, P)

    assert done.attempts == 3 and fake_llm.count(model="m") == 3
    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0  # base 0.5 s, doubling, jitter down


async def test_5xx_that_persists_raises_upstream_error(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="status", status=500))

    with pytest.raises(UpstreamError) as excinfo:
        await run_stream(openai_endpoint(fake_llm, max_retries=1), runtime, P)

    assert excinfo.value.status == 500
    assert fake_llm.count(model="m") == 2


async def test_wrong_key_fails_at_once_without_retry(fake_llm, runtime):
    with pytest.raises(AuthenticationFailed) as excinfo:
        await run_stream(openai_endpoint(fake_llm, api_key="sk-wrong-key-42"), runtime, P)

    assert excinfo.value.status == 401
    assert fake_llm.count() == 1


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_bad_request_fails_at_once_without_retry(fake_llm, runtime, status):
    fake_llm.behave("m", Behaviour(fault="status", status=status))

    with pytest.raises(BadRequest):
        await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert fake_llm.count() == 1


async def test_drop_mid_stream_restarts_without_duplicating_text(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="drop", fault_after_tokens=4, fail_first=1))

    events, done = await run_stream(openai_endpoint(fake_llm), runtime, P)

    restarts = [e for e in events if isinstance(e, Restart)]
    assert restarts == [Restart(attempt=2)]
    before = events[: events.index(restarts[0])]
    assert len([e for e in before if isinstance(e, TextDelta)]) == 4
    assert visible_text(events) == done.text == DEFAULT_TEXT
    assert done.attempts == 2 and fake_llm.count() == 2


async def test_drop_that_persists_raises_upstream_error(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="drop"))

    with pytest.raises(UpstreamError):
        await run_stream(openai_endpoint(fake_llm, max_retries=1), runtime, P)

    assert fake_llm.count() == 2


async def test_malformed_chunk_raises_malformed_stream_without_retry(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="malformed"))

    with pytest.raises(MalformedStream):
        await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert fake_llm.count() == 1


async def test_wrong_content_type_raises_malformed_stream(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="wrong_content_type"))

    with pytest.raises(MalformedStream, match="text/html"):
        await run_stream(openai_endpoint(fake_llm), runtime, P)


async def test_slow_first_token_times_out(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(first_token_delay_s=30))
    endpoint = openai_endpoint(
        fake_llm, timeouts=Timeouts(first_token_s=0.2, total_s=10), max_retries=0
    )

    with pytest.raises(Timeout, match="first token"):
        await run_stream(endpoint, runtime, P)


async def test_stall_mid_stream_times_out_after_streaming_some_text(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="stall", fault_after_tokens=2))
    endpoint = openai_endpoint(fake_llm, timeouts=Timeouts(first_token_s=5, total_s=0.3))
    seen: list[str] = []

    with pytest.raises(Timeout):
        async with get_client(endpoint, runtime=runtime) as client:
            async for event in client.stream([{"role": "user", "content": "x"}], P):
                if isinstance(event, TextDelta):
                    seen.append(event.text)

    assert "".join(seen) == "Hello from"


async def test_refused_connection_is_retried_then_raises_upstream_error(runtime):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = FakeLLMServer()
    server.port = port
    endpoint = openai_endpoint(server, max_retries=2)

    with pytest.raises(UpstreamError, match="connection failed"):
        await run_stream(endpoint, runtime, P)

    assert len(runtime.clock.sleeps) == 2  # type: ignore[attr-defined]


async def test_client_without_context_manager_opens_its_own_pool(fake_llm):
    client = get_client(openai_endpoint(fake_llm), runtime=Runtime())

    done = await complete(client, [{"role": "user", "content": "hi"}], P)

    assert done.text == DEFAULT_TEXT
