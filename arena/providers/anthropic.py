"""Client for Anthropic's Messages API (``POST {base_url}/v1/messages`` with ``stream: true``).

``Endpoint.base_url`` is the host without the version (``https://api.anthropic.com``), as in
Anthropic's SDK. System turns in ``messages`` and ``GenerationParams.system_prompt`` become the
top-level ``system`` field. Stop reasons are reported in OpenAI's words (``end_turn`` -> "stop",
``max_tokens`` -> "length").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from arena.providers import errors
from arena.providers.base import GenerationParams, Message, TextDelta
from arena.providers.engine import (
    AttemptEvent,
    AttemptResult,
    StreamingClient,
    read_sse,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}


class AnthropicClient(StreamingClient):
    """Streams the Messages API."""

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "text/event-stream",
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        headers.update(self.endpoint.extra_headers)
        return headers

    def _body(self, messages: Sequence[Message], params: GenerationParams) -> dict[str, Any]:
        system = [params.system_prompt] if params.system_prompt else []
        turns: list[dict[str, str]] = []
        for m in messages:
            if m["role"] == "system":
                system.append(m["content"])
            else:
                turns.append({"role": m["role"], "content": m["content"]})
        body: dict[str, Any] = {
            "model": params.model,
            "messages": turns,
            "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        body.update(params.extra_body)
        return body

    async def _attempt(
        self,
        http: aiohttp.ClientSession | None,
        messages: Sequence[Message],
        params: GenerationParams,
    ) -> AsyncIterator[AttemptEvent]:
        assert http is not None
        body = self._body(messages, params)
        readers = {"text/event-stream": self._read_stream}
        async for event in self._post(http, "/v1/messages", body, readers):
            yield event

    async def _read_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[AttemptEvent]:
        name = self.endpoint.name
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        stop_reason: str | None = None
        async for _event, data in read_sse(response):
            payload = self._parse_json(data)
            if not isinstance(payload, dict):
                raise errors.MalformedStream("event is not an object", provider=name)
            kind = payload.get("type")
            if kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
            elif kind == "message_start":
                usage = (payload.get("message") or {}).get("usage") or {}
                prompt_tokens = _int(usage.get("input_tokens"))
                completion_tokens = _int(usage.get("output_tokens"))
            elif kind == "message_delta":
                stop_reason = (payload.get("delta") or {}).get("stop_reason") or stop_reason
                usage = payload.get("usage") or {}
                completion_tokens = _int(usage.get("output_tokens")) or completion_tokens
            elif kind == "message_stop":
                yield AttemptResult(
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    finish_reason=_STOP_REASONS.get(stop_reason or "", stop_reason),
                )
                return
            elif kind == "error":
                raise self._stream_error(payload.get("error") or {})
            # ping, content_block_start, content_block_stop and unknown events carry no text.
        raise errors.UpstreamError("stream ended before message_stop", provider=name)

    def _stream_error(self, error: dict[str, Any]) -> errors.ProviderError:
        name = self.endpoint.name
        kind = str(error.get("type", "error"))
        detail = self._redact(f"{kind}: {error.get('message', '')}"[:300])
        if kind == "rate_limit_error":
            return errors.RateLimited(detail, provider=name)
        if kind in ("overloaded_error", "api_error"):
            return errors.UpstreamError(detail, provider=name)
        if kind in ("authentication_error", "permission_error"):
            return errors.AuthenticationFailed(detail, provider=name)
        if kind == "invalid_request_error":
            return errors.BadRequest(detail, provider=name)
        return errors.UpstreamError(detail, provider=name, retryable=False)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None
