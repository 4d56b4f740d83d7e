"""The provider interface: endpoint settings, generation parameters and stream events.

Everything here is plain data. Nothing in ``arena.providers`` imports Django or touches the
database, so a generation task can stream a response without holding a database connection:
it reads the model row, builds an :class:`Endpoint` and :class:`GenerationParams`, closes the
connection, then streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypedDict

ProviderKind = Literal["openai", "anthropic", "demo"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("openai", "anthropic", "demo")


def _frozen_map() -> Mapping[str, Any]:
    return MappingProxyType({})


class Message(TypedDict):
    """One chat turn. ``role`` is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase of a call.

    ``connect_s`` bounds opening the connection. ``first_token_s`` bounds the wait from sending a
    request to its first text delta, and is also the longest silence tolerated between two chunks.
    ``total_s`` bounds the whole ``stream()`` call, retries and backoff included, counted from the
    moment a concurrency slot is acquired.
    """

    connect_s: float = 5.0
    first_token_s: float = 30.0
    total_s: float = 180.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one provider.

    ``api_key`` is the resolved secret itself (never the env var name); it is left out of
    ``repr()`` so that logging an endpoint cannot leak it. ``name`` keys the per-provider
    concurrency limit, rate limit and circuit breaker, so two endpoints with the same name share
    them. ``options`` holds kind-specific settings (the demo pace: ``tokens_per_s``,
    ``first_token_delay_s``).
    """

    kind: ProviderKind
    name: str
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    timeouts: Timeouts = Timeouts()
    max_concurrency: int = 16
    rpm: int | None = None
    max_retries: int = 2
    extra_headers: Mapping[str, str] = field(default_factory=_frozen_map)
    options: Mapping[str, Any] = field(default_factory=_frozen_map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_headers", MappingProxyType(dict(self.extra_headers)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What to ask for. ``None`` means "use the provider's default".

    ``extra_body`` is merged last into the request body (e.g. ``{"reasoning_effort": "low"}``);
    ``seed`` is sent where the API supports it and makes the demo provider reproducible.
    """

    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    extra_body: Mapping[str, Any] = field(default_factory=_frozen_map)
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_body", MappingProxyType(dict(self.extra_body)))


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the response text; append it to what you have."""

    text: str


@dataclass(frozen=True, slots=True)
class Restart:
    """A retry restarted the response after text had streamed.

    The consumer must discard all text received so far: the deltas that follow start the response
    again from the beginning. ``attempt`` is the number (from 1) of the attempt now starting.
    """

    attempt: int


@dataclass(frozen=True, slots=True)
class Completion:
    """The last event of a successful stream.

    ``text`` is the whole response (the concatenation of the deltas since the last
    :class:`Restart`). ``finish_reason`` uses OpenAI's words ("stop", "length", "content_filter",
    ...). Token counts are ``None`` when the provider did not report them. ``latency_s`` runs
    from the call to the end, ``ttft_s`` from the call to the first delta of the attempt that
    produced ``text`` (``None`` if the text is empty). ``attempts`` counts HTTP attempts.
    """

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_s: float
    ttft_s: float | None
    attempts: int


StreamEvent = TextDelta | Restart | Completion


class Client(Protocol):
    """What every provider client offers.

    ``stream`` yields :class:`TextDelta` and :class:`Restart` events and ends with exactly one
    :class:`Completion`, or raises a :class:`~arena.providers.errors.ProviderError`. Using the
    client as an async context manager keeps one connection pool open across many calls (use it
    when running many streams); without it each call opens and closes its own pool.
    """

    endpoint: Endpoint

    def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]: ...

    async def __aenter__(self) -> Client: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
