"""Anthropic Messages client: against the fake server, and event parsing on its own."""

from __future__ import annotations

import pytest

from arena.providers import (
    AnthropicClient,
    AuthenticationFailed,
    Endpoint,
    GenerationParams,
    MalformedStream,
    RateLimited,
    Restart,
    TextDelta,
    UpstreamError,
)
from arena.providers.engine import AttemptResult, read_sse, sse_events
from tests.arena.providers.conftest import (
    API_KEY,
    FakeClock,
    anthropic_endpoint,
    run_stream,
    visible_text,
)
from tests.fakes.fake_llm import DEFAULT_TEXT, Behaviour

P = GenerationParams(model="claude-fake")


async def test_stream_assembles_text_with_usage_and_headers(fake_llm, runtime):
    params = GenerationParams(model="claude-fake", system_prompt="Be kind.", temperature=0.5)
    messages = [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Tell me about rivers"},
    ]

    events, done = await run_stream(anthropic_endpoint(fake_llm), runtime, params, messages)

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.text
    assert done.text == DEFAULT_TEXT
    assert (done.prompt_tokens, done.completion_tokens) == (9, 13)  # 5 system + 4 user words
    assert done.finish_reason == "stop"
    [request] = fake_llm.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.body["system"] == "Be kind.\n\nAnswer in English."
    assert request.body["messages"] == [{"role": "user", "content": "Tell me about rivers"}]
    assert request.body["max_tokens"] == 1024 and request.body["stream"] is True
    assert request.body["temperature"] == 0.5


async def test_overloaded_error_event_mid_stream_restarts(fake_llm, runtime):
    fake_llm.behave("claude-fake", Behaviour(fault="sse_error", fault_after_tokens=2, fail_first=1))

    events, done = await run_stream(anthropic_endpoint(fake_llm), runtime, P)

    assert Restart(attempt=2) in events
    assert visible_text(events) == done.text == DEFAULT_TEXT
    assert fake_llm.count() == 2


async def test_429_honours_retry_after(fake_llm, runtime, clock: FakeClock):
    fake_llm.behave(
        "claude-fake", Behaviour(fault="status", status=429, retry_after="4", fail_first=1)
    )

    _, done = await run_stream(anthropic_endpoint(fake_llm), runtime, P)

    assert clock.sleeps == [4.0] and done.attempts == 2


async def test_429_that_persists_raises_rate_limited(fake_llm, runtime):
    fake_llm.behave("claude-fake", Behaviour(fault="status", status=429))

    with pytest.raises(RateLimited):
        await run_stream(anthropic_endpoint(fake_llm, max_retries=1), runtime, P)

    assert fake_llm.count() == 2


async def test_529_overloaded_is_retried(fake_llm, runtime):
    fake_llm.behave("claude-fake", Behaviour(fault="status", status=529, fail_first=1))

    _, done = await run_stream(anthropic_endpoint(fake_llm), runtime, P)

    assert done.attempts == 2


async def test_wrong_key_is_not_retried(fake_llm, runtime):
    with pytest.raises(AuthenticationFailed):
        await run_stream(anthropic_endpoint(fake_llm, api_key="sk-ant-wrong"), runtime, P)

    assert fake_llm.count() == 1


async def test_dropped_connection_restarts(fake_llm, runtime):
    fake_llm.behave("claude-fake", Behaviour(fault="drop", fail_first=1))

    events, done = await run_stream(anthropic_endpoint(fake_llm), runtime, P)

    assert visible_text(events) == done.text == DEFAULT_TEXT
    assert events.count(Restart(attempt=2)) == 1


async def test_wrong_content_type_is_malformed(fake_llm, runtime):
    fake_llm.behave("claude-fake", Behaviour(fault="wrong_content_type"))

    with pytest.raises(MalformedStream):
        await run_stream(anthropic_endpoint(fake_llm), runtime, P)


# -- parsing events on their own ------------------------------------------------------------


class _Content:
    """What the readers use of an aiohttp response body: ``iter_any()``, here in 7-byte chunks,
    so lines (and multi-byte characters) arrive cut across reads."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def iter_any(self):
        for i in range(0, len(self._body), 7):
            yield self._body[i : i + 7]


class _Response:
    def __init__(self, body: str) -> None:
        self.content = _Content(body.encode())


def _response(body: str) -> _Response:
    return _Response(body)


async def _parse(body: str) -> list[object]:
    client = AnthropicClient(Endpoint(kind="anthropic", name="a"))
    return [event async for event in client._read_stream(_response(body))]


async def test_parser_reads_usage_stop_reason_and_ignores_non_text_events():
    body = (
        'event: message_start\ndata: {"type": "message_start", "message": '
        '{"usage": {"input_tokens": 11, "output_tokens": 1}}}\n\n'
        ": a comment line\n\n"
        'event: content_block_start\ndata: {"type": "content_block_start", "index": 0}\n\n'
        'event: ping\ndata: {"type": "ping"}\n\n'
        'event: content_block_delta\ndata: {"type": "content_block_delta", '
        '"delta": {"type": "thinking_delta", "thinking": "hmm"}}\n\n'
        'event: content_block_delta\ndata: {"type": "content_block_delta", '
        '"delta": {"type": "text_delta", "text": "Hi"}}\n\n'
        'event: future_event\ndata: {"type": "future_event"}\n\n'
        'event: message_delta\ndata: {"type": "message_delta", '
        '"delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 5}}\n\n'
        'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    )

    events = await _parse(body)

    assert events == [
        TextDelta("Hi"),
        AttemptResult(prompt_tokens=11, completion_tokens=5, finish_reason="length"),
    ]


async def test_parser_raises_when_the_stream_ends_before_message_stop():
    body = 'data: {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "a"}}\n\n'

    with pytest.raises(UpstreamError, match="message_stop"):
        await _parse(body)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limit_error", RateLimited),
        ("overloaded_error", UpstreamError),
        ("authentication_error", AuthenticationFailed),
    ],
)
async def test_parser_maps_error_events(kind, error):
    body = f'event: error\ndata: {{"type": "error", "error": {{"type": "{kind}"}}}}\n\n'

    with pytest.raises(error):
        await _parse(body)


async def test_sse_parser_joins_multiline_data():
    async def lines():
        for line in ["event: x", "data: a", "data: b", "", "data: c"]:
            yield line

    assert [e async for e in sse_events(lines())] == [("x", "a\nb"), ("", "c")]


async def test_body_reader_reassembles_lines_cut_across_reads():
    """``read_sse`` reads whatever bytes arrived: lines, CRLF endings and multi-byte characters
    cut across 7-byte reads come out whole, comments are skipped, a last unterminated event is
    kept."""
    body = ": keep-alive\r\nevent: x\r\ndata: Grüße 日本語\r\ndata: b\r\n\r\ndata: 🙂 tail"
    events = [e async for e in read_sse(_response(body))]
    assert events == [("x", "Grüße 日本語\nb"), ("", "🙂 tail")]
