"""Client for OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter...).

``Endpoint.base_url`` includes the API version prefix, as in the OpenAI SDK
(``https://api.openai.com/v1``, ``http://localhost:11434/v1``); requests go to
``{base_url}/chat/completions`` with ``stream: true`` and ``stream_options.include_usage``.
A server that answers ``application/json`` instead of an event stream is read as one
non-streamed completion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
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


class OpenAIClient(StreamingClient):
    """Streams ``/chat/completions`` from an OpenAI-compatible server."""

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        headers.update(self.endpoint.extra_headers)
        return headers

    def _body(self, messages: Sequence[Message], params: GenerationParams) -> dict[str, Any]:
        chat: list[dict[str, str]] = []
        if params.system_prompt:
            chat.append({"role": "system", "content": params.system_prompt})
        chat.extend({"role": m["role"], "content": m["content"]} for m in messages)
        body: dict[str, Any] = {
            "model": params.model,
            "messages": chat,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.seed is not None:
            body["seed"] = params.seed
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
        readers = {"text/event-stream": self._read_stream, "application/json": self._read_json}
        async for event in self._post(http, "/chat/completions", body, readers):
            yield event

    async def _read_stream(self, response: aiohttp.ClientResponse) -> AsyncIterator[AttemptEvent]:
        finish_reason: str | None = None
        usage: Mapping[str, Any] | None = None
        done = False
        async for _event, data in read_sse(response):
            if data == "[DONE]":
                done = True
                break
            chunk = self._chunk(data)
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if text:
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        if not done and finish_reason is None:
            # The connection closed cleanly but early: treat like a dropped connection.
            raise errors.UpstreamError(
                "stream ended before completion", provider=self.endpoint.name
            )
        yield _result(usage, finish_reason)

    def _chunk(self, data: str) -> dict[str, Any]:
        """One event's JSON object; an error the server reports mid-stream is raised."""
        chunk = self._parse_json(data)
        if not isinstance(chunk, dict):
            raise errors.MalformedStream("chunk is not an object", provider=self.endpoint.name)
        if "error" in chunk:
            raise errors.UpstreamError(
                self._redact(str(chunk["error"])[:300]), provider=self.endpoint.name
            )
        return chunk

    async def _read_json(self, response: aiohttp.ClientResponse) -> AsyncIterator[AttemptEvent]:
        data = self._parse_json(await response.read())
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise errors.MalformedStream(
                "JSON answer without choices[0].message", provider=self.endpoint.name
            ) from None
        if text:
            yield TextDelta(text)
        yield _result(data.get("usage"), choice.get("finish_reason"))


def _result(usage: Any, finish_reason: str | None) -> AttemptResult:
    prompt = completion = None
    if isinstance(usage, dict):
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
    return AttemptResult(
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        completion_tokens=completion if isinstance(completion, int) else None,
        finish_reason=finish_reason,
    )
