"""Fixtures for provider tests: the fake LLM server, a fake clock and an isolated runtime."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from arena.providers import (
    Completion,
    Endpoint,
    GenerationParams,
    Message,
    Restart,
    Runtime,
    StreamEvent,
    TextDelta,
    Timeouts,
    get_client,
)
from tests.fakes.fake_llm import FakeLLMServer

API_KEY = "sk-test-SECRET-0123456789"
USER: list[Message] = [{"role": "user", "content": "Tell me about rivers"}]


class FakeClock:
    """Monotonic time that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def _fake_llm_session() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def fake_llm(_fake_llm_session: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The shared fake server, with behaviours and request log cleared for this test."""
    _fake_llm_session.reset()
    yield _fake_llm_session
    _fake_llm_session.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(clock: FakeClock) -> Runtime:
    """Breakers and limits private to the test; backoff sleeps are instant and recorded."""
    return Runtime(clock=clock, rng=random.Random(0), failure_threshold=3, cooldown_s=30.0)


def openai_endpoint(server: FakeLLMServer, **changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "kind": "openai",
        "name": "fake-openai",
        "base_url": server.openai_base_url,
        "api_key": API_KEY,
        "timeouts": Timeouts(connect_s=2.0, first_token_s=5.0, total_s=10.0),
    }
    values.update(changes)
    return Endpoint(**values)


def anthropic_endpoint(server: FakeLLMServer, **changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "kind": "anthropic",
        "name": "fake-anthropic",
        "base_url": server.anthropic_base_url,
        "api_key": API_KEY,
        "timeouts": Timeouts(connect_s=2.0, first_token_s=5.0, total_s=10.0),
    }
    values.update(changes)
    return Endpoint(**values)


async def run_stream(
    endpoint: Endpoint,
    runtime: Runtime,
    params: GenerationParams,
    messages: Sequence[Message] = USER,
) -> tuple[list[StreamEvent], Completion]:
    """All events of one stream, and its Completion (raises what the stream raises)."""
    events: list[StreamEvent] = []
    async with get_client(endpoint, runtime=runtime) as client:
        async for event in client.stream(messages, params):
            events.append(event)
    final = events[-1]
    assert isinstance(final, Completion)
    return events, final


def visible_text(events: Sequence[StreamEvent]) -> str:
    """What a consumer following the contract shows: deltas since the last Restart."""
    text = ""
    for event in events:
        if isinstance(event, Restart):
            text = ""
        elif isinstance(event, TextDelta):
            text += event.text
    return text
