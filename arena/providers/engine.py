"""The retry / timeout / breaker loop every client shares, and HTTP helpers.

A concrete client implements :meth:`StreamingClient._attempt`: one try that yields
:class:`TextDelta` events and ends with one :class:`AttemptResult`, raising a typed
:class:`~arena.providers.errors.ProviderError` on failure. :meth:`StreamingClient.stream` wraps
attempts with the per-provider concurrency slot, rate limit, circuit breaker, timeouts and
retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp

from arena.providers import errors
from arena.providers.base import (
    Completion,
    Endpoint,
    GenerationParams,
    Message,
    Restart,
    StreamEvent,
    TextDelta,
)
from arena.providers.resilience import DEFAULT_RUNTIME, CircuitBreaker, Runtime

logger = logging.getLogger("arena.providers")

_ERROR_BODY_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """End of one successful attempt: what the provider reported besides the text."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


AttemptEvent = TextDelta | AttemptResult


@cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~20 ms); share one across all clients.
    import certifi  # the CA bundle httpx used; the system store is not always complete

    return ssl.create_default_context(cafile=certifi.where())


class StreamingClient(ABC):
    """Base of all clients; see :class:`arena.providers.base.Client` for the contract."""

    def __init__(self, endpoint: Endpoint, *, runtime: Runtime | None = None) -> None:
        self.endpoint = endpoint
        self.runtime = runtime or DEFAULT_RUNTIME
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"

    # -- connection pool -------------------------------------------------------------------

    def _new_http(self) -> aiohttp.ClientSession:
        """aiohttp rather than httpx: its C HTTP parser reads a token's SSE event for about 80 µs of
        CPU where httpx/httpcore/h11 took about 200 µs (bench/arena.py streams 6,000 tokens/s on
        two cores). ``sock_read`` bounds the silence between chunks (the first-token timeout)."""
        t = self.endpoint.timeouts
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.endpoint.max_concurrency, limit_per_host=0, ssl=_ssl_context()
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=t.connect_s, sock_connect=t.connect_s, sock_read=t.first_token_s
            ),
            trust_env=False,
        )

    async def __aenter__(self) -> StreamingClient:
        if self._http is None:
            self._http = self._new_http()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    # -- the shared loop -------------------------------------------------------------------

    @abstractmethod
    def _attempt(
        self,
        http: aiohttp.ClientSession | None,
        messages: Sequence[Message],
        params: GenerationParams,
    ) -> AsyncIterator[AttemptEvent]:
        """One try: yield deltas, then one AttemptResult; raise ProviderError on failure."""

    def _needs_http(self) -> bool:
        return True

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        """Stream one response; see :class:`arena.providers.base.Client`.

        Retries connection errors, timeouts, 429 (after Retry-After, capped) and 5xx with
        exponential backoff and jitter, up to ``endpoint.max_retries`` times and within
        ``timeouts.total_s``; never retries auth failures, bad requests or malformed answers.
        A retry after text has streamed first yields :class:`Restart`.
        """
        ep = self.endpoint
        rt = self.runtime
        breaker = rt.breaker(ep.name)
        breaker.acquire()
        settled = False
        own_http: aiohttp.ClientSession | None = None
        try:
            async with rt.slot(ep.name, ep.max_concurrency):
                http, own_http = self._stream_http()
                loop = asyncio.get_running_loop()
                started = rt.clock.monotonic()
                deadline = loop.time() + ep.timeouts.total_s
                attempt = 0
                while True:
                    attempt += 1
                    await rt.throttle(ep.name, ep.rpm)
                    parts: list[str] = []
                    first_token_at: float | None = None
                    result: AttemptResult | None = None
                    try:
                        guarded = self._guarded(self._attempt(http, messages, params), deadline)
                        async with aclosing(guarded) as events:
                            async for event in events:
                                if isinstance(event, TextDelta):
                                    if first_token_at is None:
                                        first_token_at = rt.clock.monotonic()
                                    parts.append(event.text)
                                    yield event
                                else:
                                    result = event
                        result = self._final_result(result)
                    except errors.ProviderError as exc:
                        delay = self._retry_delay(exc, attempt, deadline - loop.time())
                        if delay is None:
                            self._give_up(breaker, exc, attempt)
                            settled = True
                            raise
                        logger.info(
                            "provider %s attempt %d failed (%r); retrying in %.2fs",
                            ep.name,
                            attempt,
                            exc,
                            delay,
                        )
                        if first_token_at is not None:
                            yield Restart(attempt + 1)
                        await rt.clock.sleep(delay)
                        continue
                    breaker.record_success()
                    settled = True
                    finished = rt.clock.monotonic()
                    yield Completion(
                        text="".join(parts),
                        prompt_tokens=result.prompt_tokens,
                        completion_tokens=result.completion_tokens,
                        finish_reason=result.finish_reason,
                        latency_s=finished - started,
                        ttft_s=None if first_token_at is None else first_token_at - started,
                        attempts=attempt,
                    )
                    return
        finally:
            if not settled:
                breaker.release()
            if own_http is not None:
                await own_http.close()

    def _stream_http(self) -> tuple[aiohttp.ClientSession | None, aiohttp.ClientSession | None]:
        """(the session a stream uses, the session it opened for itself and must close): the
        client's own pool when it was entered, else a session for this stream alone."""
        if self._http is None and self._needs_http():
            own = self._new_http()
            return own, own
        return self._http, None

    def _final_result(self, result: AttemptResult | None) -> AttemptResult:
        """An attempt must end with its result; a stream that just stops is malformed."""
        if result is None:
            raise errors.MalformedStream(
                "stream ended without a result", provider=self.endpoint.name
            )
        return result

    def _give_up(self, breaker: CircuitBreaker, exc: errors.ProviderError, attempt: int) -> None:
        """Settle the breaker for a call that failed for good: a bad request is the caller's
        fault, not the provider's, so it ends the call without counting a failure."""
        exc.attempts = attempt
        if isinstance(exc, errors.BadRequest):
            breaker.release()
        else:
            breaker.record_failure()
        logger.warning(
            "provider %s failed after %d attempt(s): %r", self.endpoint.name, attempt, exc
        )

    def _retry_delay(
        self, exc: errors.ProviderError, attempt: int, remaining_s: float
    ) -> float | None:
        if not exc.retryable or attempt > self.endpoint.max_retries:
            return None
        delay = self.runtime.retry.delay(attempt, exc, self.runtime.rng)
        if delay >= remaining_s:
            return None
        return delay

    async def _guarded(
        self, events: AsyncIterator[AttemptEvent], deadline: float
    ) -> AsyncGenerator[AttemptEvent, None]:
        """Apply the first-token and total deadlines and translate transport errors."""
        ep = self.endpoint
        loop = asyncio.get_running_loop()
        first_token_deadline: float | None = loop.time() + ep.timeouts.first_token_s
        # Between chunks aiohttp's read timeout (first_token_s) already bounds silence, so the
        # (costly per chunk) asyncio timer is armed only while waiting for the first token or
        # when the total deadline is nearer than a read timeout.
        relaxed_until = deadline - ep.timeouts.first_token_s
        iterator = aiter(events)
        try:
            while True:
                now = loop.time()
                try:
                    if first_token_deadline is None and now < relaxed_until:
                        event = await anext(iterator)
                    else:
                        limit = deadline
                        if first_token_deadline is not None:
                            limit = min(deadline, first_token_deadline)
                        async with asyncio.timeout(max(0.0, limit - now)):
                            event = await anext(iterator)
                except StopAsyncIteration:
                    return
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise self._transport_error(exc, first_token_deadline, deadline) from None
                if isinstance(event, TextDelta):
                    first_token_deadline = None
                yield event
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    def _transport_error(
        self, exc: BaseException, first_token_deadline: float | None, deadline: float
    ) -> errors.ProviderError:
        """The typed error for a timeout or a transport failure while waiting for an event."""
        ep = self.endpoint
        if isinstance(exc, aiohttp.ServerTimeoutError):  # (also a TimeoutError: tested first)
            return errors.Timeout(
                f"{type(exc).__name__} (connect {ep.timeouts.connect_s}s, "
                f"read {ep.timeouts.first_token_s}s)",
                provider=ep.name,
            )
        if isinstance(exc, TimeoutError):
            if first_token_deadline is not None and first_token_deadline <= deadline:
                what = f"no first token within {ep.timeouts.first_token_s}s"
            else:
                what = f"response not finished within {ep.timeouts.total_s}s"
            return errors.Timeout(what, provider=ep.name)
        return errors.UpstreamError(
            f"connection failed: {type(exc).__name__}: {self._redact(str(exc))}",
            provider=ep.name,
        )

    # -- helpers for HTTP clients ----------------------------------------------------------

    def _redact(self, text: str) -> str:
        return errors.redact(text, [self.endpoint.api_key])

    def _url(self, path: str) -> str:
        return self.endpoint.base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        return dict(self.endpoint.extra_headers)

    async def _post(
        self,
        http: aiohttp.ClientSession,
        path: str,
        body: dict[str, Any],
        readers: dict[str, Callable[[aiohttp.ClientResponse], AsyncIterator[AttemptEvent]]],
    ) -> AsyncIterator[AttemptEvent]:
        """POST ``body`` with streaming on, map an error status to a typed error, then read the
        answer with the reader registered for its content type (any other is MalformedStream).
        The response is always released (its connection closed if it was not read to the end)."""
        headers = {"Content-Type": "application/json", **self._headers()}
        response = await http.post(self._url(path), data=json.dumps(body).encode(), headers=headers)
        try:
            await self._raise_for_status(response)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            reader = readers.get(content_type)
            if reader is None:
                raise errors.MalformedStream(
                    f"unexpected content type {content_type or 'none'!r}",
                    provider=self.endpoint.name,
                    status=response.status,
                )
            async for event in reader(response):
                yield event
        finally:
            response.release()

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        """Map a non-2xx response to a typed error (reads at most a little of the body)."""
        status = response.status
        if status < 400:
            return
        body = b""
        try:
            while len(body) < _ERROR_BODY_LIMIT:
                chunk = await response.content.read(_ERROR_BODY_LIMIT - len(body))
                if not chunk:
                    break
                body += chunk
        except aiohttp.ClientError:
            pass
        text = body[:_ERROR_BODY_LIMIT].decode("utf-8", "replace")
        detail = self._redact(_error_text(text) or response.reason or "error")
        name = self.endpoint.name
        if status in (401, 403):
            raise errors.AuthenticationFailed(detail, provider=name, status=status)
        if status == 429:
            raise errors.RateLimited(
                detail,
                provider=name,
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status == 408:
            raise errors.Timeout(detail, provider=name, status=status)
        if status < 500:
            raise errors.BadRequest(detail, provider=name, status=status)
        raise errors.UpstreamError(
            detail,
            provider=name,
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _parse_json(self, data: str | bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            snippet = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
            raise errors.MalformedStream(
                f"invalid JSON from provider: {self._redact(snippet)!r}",
                provider=self.endpoint.name,
            ) from None


def _error_text(body: str) -> str:
    """The message inside an OpenAI- or Anthropic-style JSON error body, else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return body.strip()[:300]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _SSEParser:
    """Server-Sent Events from decoded lines: comment lines are skipped, several ``data:`` lines
    of one event are joined with newlines."""

    __slots__ = ("event", "data")

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str, str] | None:
        """Feed one line (without its ending); returns an event when a blank line ends one."""
        if not line:
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "", []
            return done
        if line.startswith(":"):
            return None
        fieldname, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if fieldname == "data":
            self.data.append(value)
        elif fieldname == "event":
            self.event = value
        return None

    def end(self) -> tuple[str, str] | None:
        return (self.event, "\n".join(self.data)) if self.data else None


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Parse Server-Sent Events from decoded lines into ``(event, data)`` pairs."""
    parser = _SSEParser()
    async for line in lines:
        if (event := parser.line(line)) is not None:
            yield event
    if (event := parser.end()) is not None:
        yield event


async def read_sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs straight from a streamed body.

    Reads whatever bytes have arrived (one read per network chunk, not one per line) and splits
    them into lines itself: a provider stream is one small event per token, and at 6,000 tokens
    per second in one worker the per-line reads and the extra generator were most of the cost.
    Lines split on ``\n`` bytes, so a multi-byte character is never cut in two.
    """
    parser = _SSEParser()
    rest = b""
    async for chunk in response.content.iter_any():
        if b"\n" not in chunk:
            rest += chunk
            continue
        *lines, rest = (rest + chunk).split(b"\n")
        for raw in lines:
            if (event := parser.line(raw.decode("utf-8", "replace").rstrip("\r"))) is not None:
                yield event
    if rest and (event := parser.line(rest.decode("utf-8", "replace").rstrip("\r"))):
        yield event
    if (event := parser.end()) is not None:
        yield event
