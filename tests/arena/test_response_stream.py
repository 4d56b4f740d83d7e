"""ResponseStream against a scripted provider and a recording publisher: the frames it posts,
in order, and how a restart, a stop and a provider error end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from arena import generation
from arena.generation import Job, ResponseStream
from arena.providers import (
    Completion,
    Endpoint,
    GenerationParams,
    Restart,
    StreamEvent,
    TextDelta,
    UpstreamError,
)

JOB = Job(
    response_pk=1,
    public_id="response-1",
    battle_public_id="battle-1",
    side="a",
    attempt=1,
    provider="demo",
    endpoint=Endpoint(kind="demo", name="demo"),
    params=GenerationParams(model="demo-terse"),
    messages=[{"role": "user", "content": "hi"}],
)


class RecordingPublisher:
    """Records every post; a stop check finds the flag when ``stop`` is set. Futures resolve on
    the next loop iteration, as a real round trip would, later than the post."""

    def __init__(self, *, stop: bool = False) -> None:
        self.stop = stop
        self.posts: list[dict[str, Any]] = []
        self.futures: list[asyncio.Future[bool]] = []

    def post(
        self,
        public_id: str,
        frame: dict[str, Any],
        *,
        response_public_id: str,
        text: str | None = None,
        epoch: int | None = None,
        stop_attempt: int | None = None,
    ) -> asyncio.Future[bool]:
        self.posts.append({**frame, "stop_check": stop_attempt is not None})
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        loop.call_soon(future.set_result, self.stop and stop_attempt is not None)
        self.futures.append(future)
        return future


class ScriptedClient:
    def __init__(self, events: list[StreamEvent | Exception]) -> None:
        self.events = events
        self.closed = False

    async def stream(self, messages: Any, params: Any) -> AsyncIterator[StreamEvent]:
        try:
            for event in self.events:
                if isinstance(event, Exception):
                    raise event
                yield event
                await asyncio.sleep(0)  # a network read between events
        finally:
            self.closed = True


def _run(
    monkeypatch: pytest.MonkeyPatch, events: list[StreamEvent | Exception], publisher: Any
) -> tuple[generation.Outcome, ScriptedClient]:
    client = ScriptedClient(events)

    async def client_for(endpoint: Endpoint) -> ScriptedClient:
        return client

    monkeypatch.setattr(generation, "client_for", client_for)

    async def run() -> generation.Outcome:
        stream = ResponseStream(JOB)
        stream.publisher = publisher
        stream.flush_every = 1.0  # only the first delta is sent before the end
        outcome = await stream.run()
        assert all(f.done() for f in publisher.futures)  # every frame out before it returns
        return outcome

    return asyncio.run(run()), client


def _completion(text: str) -> Completion:
    return Completion(
        text=text,
        prompt_tokens=1,
        completion_tokens=2,
        finish_reason="stop",
        latency_s=0.1,
        ttft_s=0.01,
        attempts=2,
    )


def test_first_delta_goes_out_at_once_and_a_restart_starts_a_new_epoch_from_offset_zero(
    monkeypatch,
):
    publisher = RecordingPublisher()
    events: list[StreamEvent | Exception] = [
        TextDelta("Hel"),
        TextDelta("lo"),
        Restart(2),
        TextDelta("Hi"),
        TextDelta(" there"),
        _completion("Hi there"),
    ]
    outcome, _ = _run(monkeypatch, events, publisher)
    base = {"r": "response-1", "side": "a"}
    assert publisher.posts == [
        {"k": "reset", **base, "epoch": 1000, "stop_check": False},
        {"k": "delta", **base, "epoch": 1000, "offset": 0, "text": "Hel", "stop_check": True},
        {"k": "reset", **base, "epoch": 1001, "stop_check": False},
        {"k": "delta", **base, "epoch": 1001, "offset": 0, "text": "Hi there", "stop_check": False},
    ]
    assert (outcome.text, outcome.restarts, outcome.kind) == ("Hi there", 1, "done")


def test_a_stop_ends_the_provider_call_and_keeps_the_text_posted(monkeypatch):
    publisher = RecordingPublisher(stop=True)
    events: list[StreamEvent | Exception] = [TextDelta(t) for t in "abcdef"]
    outcome, client = _run(monkeypatch, events, publisher)
    assert outcome.stopped and outcome.kind == "stopped" and outcome.completion is None
    assert outcome.text == "".join(p.get("text", "") for p in publisher.posts)
    assert outcome.text.startswith("a") and len(outcome.text) < 6
    assert client.closed


def test_a_provider_error_ends_failed_with_the_text_posted_so_far(monkeypatch):
    publisher = RecordingPublisher()
    error = UpstreamError("connection reset", provider="demo")
    outcome, _ = _run(monkeypatch, [TextDelta("par"), TextDelta("tial"), error], publisher)
    assert outcome.error is error and outcome.kind == "failed"
    assert outcome.text == "par"  # what the page was shown; the unflushed tail is dropped
