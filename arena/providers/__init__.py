"""LLM provider clients behind one small interface (no Django imports here).

Typical use in a generation task::

    endpoint = Endpoint(kind="openai", name="openai", base_url="https://api.openai.com/v1",
                        api_key=os.environ["OPENAI_API_KEY"])
    params = GenerationParams(model="gpt-4o-mini", temperature=0.7, max_tokens=1024)
    async with get_client(endpoint) as client:
        async for event in client.stream([{"role": "user", "content": prompt}], params):
            ...  # TextDelta: append; Restart: discard the text so far; Completion: save

``complete_sync`` does the same from synchronous code and returns the Completion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from arena.providers.anthropic import AnthropicClient
from arena.providers.base import (
    PROVIDER_KINDS,
    Client,
    Completion,
    Endpoint,
    GenerationParams,
    Message,
    ProviderKind,
    Restart,
    StreamEvent,
    TextDelta,
    Timeouts,
)
from arena.providers.demo import DEMO_MODELS, DemoClient, DemoModelSpec
from arena.providers.engine import StreamingClient
from arena.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    CircuitOpen,
    MalformedStream,
    ProviderError,
    RateLimited,
    Timeout,
    UpstreamError,
)
from arena.providers.openai import OpenAIClient
from arena.providers.resilience import DEFAULT_RUNTIME, Runtime, is_open

__all__ = [
    "DEFAULT_RUNTIME",
    "DEMO_MODELS",
    "PROVIDER_KINDS",
    "AnthropicClient",
    "AuthenticationFailed",
    "BadRequest",
    "CircuitOpen",
    "Client",
    "Completion",
    "DemoClient",
    "DemoModelSpec",
    "Endpoint",
    "GenerationParams",
    "MalformedStream",
    "Message",
    "OpenAIClient",
    "ProviderError",
    "ProviderKind",
    "RateLimited",
    "Restart",
    "Runtime",
    "StreamEvent",
    "StreamingClient",
    "TextDelta",
    "Timeout",
    "Timeouts",
    "UpstreamError",
    "complete",
    "complete_sync",
    "get_client",
    "is_open",
]

_CLIENTS: dict[str, type[StreamingClient]] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
    "demo": DemoClient,
}


def get_client(endpoint: Endpoint, *, runtime: Runtime | None = None) -> StreamingClient:
    """The client for ``endpoint.kind``; ``runtime`` defaults to the process-wide one."""
    try:
        cls = _CLIENTS[endpoint.kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {endpoint.kind!r}") from None
    return cls(endpoint, runtime=runtime)


async def complete(
    client: StreamingClient, messages: Sequence[Message], params: GenerationParams
) -> Completion:
    """Consume ``client.stream`` and return its Completion (raises ProviderError)."""
    async for event in client.stream(messages, params):
        if isinstance(event, Completion):
            return event
    raise AssertionError("stream ended without a Completion")  # the contract forbids it


def complete_sync(
    endpoint: Endpoint,
    messages: Sequence[Message],
    params: GenerationParams,
    *,
    runtime: Runtime | None = None,
) -> Completion:
    """Blocking whole-response call for management commands and scripts.

    Runs its own event loop, so it must not be called from inside a running one.
    """

    async def run() -> Completion:
        async with get_client(endpoint, runtime=runtime) as client:
            return await complete(client, messages, params)

    return asyncio.run(run())
