"""Circuit breaker, concurrency slots, rate limit and retry policy."""

from __future__ import annotations

import asyncio
import random

import pytest

from arena.providers import (
    CircuitOpen,
    GenerationParams,
    Runtime,
    UpstreamError,
    get_client,
    is_open,
)
from arena.providers.errors import RateLimited
from arena.providers.resilience import ProcessSemaphore, RateLimiter, RetryPolicy
from tests.arena.providers.conftest import FakeClock, openai_endpoint, run_stream
from tests.fakes.fake_llm import DEFAULT_TEXT, Behaviour

P = GenerationParams(model="m")


async def _fail(fake_llm, runtime, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamError):
            await run_stream(openai_endpoint(fake_llm, max_retries=0), runtime, P)


async def test_breaker_opens_after_threshold_and_fails_fast(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="status", status=500))
    await _fail(fake_llm, runtime, 2)
    assert not runtime.is_open("fake-openai")

    await _fail(fake_llm, runtime, 1)

    assert runtime.is_open("fake-openai")
    with pytest.raises(CircuitOpen) as excinfo:
        await run_stream(openai_endpoint(fake_llm), runtime, P)
    assert fake_llm.count() == 3  # the refused call sent nothing
    assert excinfo.value.user_message == "The model is temporarily unavailable."


async def test_breaker_half_opens_after_cooldown_and_closes_on_success(
    fake_llm, runtime, clock: FakeClock
):
    fake_llm.behave("m", Behaviour(fault="status", status=500))
    await _fail(fake_llm, runtime, 3)
    clock.advance(31)
    assert not runtime.is_open("fake-openai")  # half-open: the next call is let through
    assert runtime.breaker("fake-openai").state == "half_open"
    fake_llm.behave("m", Behaviour())

    _, done = await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert done.text == DEFAULT_TEXT
    assert runtime.breaker("fake-openai").state == "closed"


async def test_failed_probe_reopens_the_breaker(fake_llm, runtime, clock: FakeClock):
    fake_llm.behave("m", Behaviour(fault="status", status=500))
    await _fail(fake_llm, runtime, 3)
    clock.advance(31)

    await _fail(fake_llm, runtime, 1)

    assert runtime.is_open("fake-openai")
    assert fake_llm.count() == 4


async def test_half_open_admits_one_probe_at_a_time(runtime, clock: FakeClock):
    breaker = runtime.breaker("p")
    for _ in range(3):
        breaker.acquire()
        breaker.record_failure()
    clock.advance(31)

    breaker.acquire()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    assert runtime.is_open("p")
    breaker.release()  # the probe was abandoned
    breaker.acquire()


async def test_bad_requests_do_not_open_the_breaker(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(fault="status", status=400))
    for _ in range(5):
        with pytest.raises(Exception, match="400"):
            await run_stream(openai_endpoint(fake_llm), runtime, P)

    assert not runtime.is_open("fake-openai")


async def test_abandoned_stream_releases_its_slot_and_probe(fake_llm, runtime):
    endpoint = openai_endpoint(fake_llm, max_concurrency=1)
    async with get_client(endpoint, runtime=runtime) as client:
        stream = client.stream([{"role": "user", "content": "x"}], P)
        await anext(stream)
        await stream.aclose()

        _, done = await run_stream(endpoint, runtime, P)  # would block if the slot leaked

    assert done.text == DEFAULT_TEXT


def test_module_level_is_open_reads_the_default_runtime():
    assert is_open("never-used-provider") is False


async def test_concurrency_limit_holds_extra_streams_back(fake_llm, runtime):
    fake_llm.behave("m", Behaviour(tokens_per_s=200))
    endpoint = openai_endpoint(fake_llm, max_concurrency=2)

    async def one() -> None:
        await run_stream(endpoint, runtime, P)

    await asyncio.gather(*(one() for _ in range(5)))

    # With two slots the five requests arrive in waves: at most two before the first finished.
    times = sorted(r.received_at for r in fake_llm.requests)
    one_stream = 12 / 200
    assert times[2] - times[0] >= one_stream * 0.8


async def test_semaphore_hands_slot_to_waiter_and_survives_cancellation():
    semaphore = ProcessSemaphore(1)
    await semaphore.acquire()
    waiter = asyncio.ensure_future(semaphore.acquire())
    cancelled = asyncio.ensure_future(semaphore.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()

    cancelled.cancel()
    semaphore.release()
    await waiter
    semaphore.release()

    await asyncio.wait_for(semaphore.acquire(), 1)  # the slot is still there


async def test_rate_limiter_spaces_requests_after_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock, burst=2)

    for _ in range(4):
        await limiter.acquire()

    assert clock.sleeps == [1.0, 1.0]


def test_backoff_grows_with_jitter_and_retry_after_wins():
    policy = RetryPolicy(base_delay_s=1, max_delay_s=5, retry_after_cap_s=10, jitter=0.5)
    rng = random.Random(1)
    plain = UpstreamError("x")

    delays = [policy.delay(n, plain, rng) for n in (1, 2, 3, 4, 5)]

    assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2 and 2 <= delays[2] <= 4
    assert all(2.5 <= d <= 5 for d in delays[3:])
    assert policy.delay(1, RateLimited("x", retry_after=3), rng) == 3
    assert policy.delay(1, RateLimited("x", retry_after=99), rng) == 10


def test_runtime_default_is_shared():
    assert Runtime().is_open("x") is False
