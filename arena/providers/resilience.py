"""Shared protections: clock, retry policy, circuit breakers, concurrency and rate limits.

All state here is per process and shared by every thread and event loop in it (a lock guards
it), so an embedded thread pool running one event loop per task still sees one limit per
provider. Several processes (Celery workers) each keep their own.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from arena.providers import errors


class Clock(Protocol):
    """Time source for backoff sleeps, circuit cooldowns, rate limits and reported timings.

    I/O timeouts use the event loop's own clock, not this one.
    """

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After wins, capped."""

    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    retry_after_cap_s: float = 30.0
    jitter: float = 0.5  # the delay is scaled by a factor drawn from [1 - jitter, 1]

    def delay(self, retry_number: int, error: errors.ProviderError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry_number`` (from 1) after ``error``."""
        if error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.retry_after_cap_s))
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))
        return backoff * (1.0 - self.jitter * rng.random())


State = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """One provider's breaker.

    Closed: calls pass. After ``failure_threshold`` consecutive failed calls it opens: calls fail
    fast with :class:`~arena.providers.errors.CircuitOpen`. After ``cooldown_s`` one probe call
    is let through (half-open); its success closes the breaker, its failure reopens it.
    """

    name: str
    clock: Clock
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    probe_in_flight: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if self.clock.monotonic() - self.opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    def is_open(self) -> bool:
        """True while calls would be refused (open, or half-open with its probe in flight)."""
        with self._lock:
            state = self._state()
            return state == "open" or (state == "half_open" and self.probe_in_flight)

    def acquire(self) -> None:
        """Admit one call or raise CircuitOpen. Every admitted call must end in exactly one of
        :meth:`record_success`, :meth:`record_failure` or :meth:`release`."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self.probe_in_flight:
                self.probe_in_flight = True
                return
        raise errors.CircuitOpen("circuit open after repeated failures", provider=self.name)

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self.probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.probe_in_flight or self.failures >= self.failure_threshold:
                self.opened_at = self.clock.monotonic()
            self.probe_in_flight = False

    def release(self) -> None:
        """End an admitted call that neither succeeded nor failed (abandoned, bad request)."""
        with self._lock:
            self.probe_in_flight = False


class ProcessSemaphore:
    """A counting semaphore usable from any thread and any event loop in the process."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                    granted = False
                except ValueError:
                    granted = True  # release() already handed us the slot: pass it on
            if granted:
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if not self._waiters:
                self._value += 1
                return
            loop, fut = self._waiters.popleft()
        loop.call_soon_threadsafe(self._grant, fut)

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # cancelled between hand-over and now
            self.release()
        else:
            fut.set_result(None)


class RateLimiter:
    """Spaces requests to ``rpm`` per minute with a small burst (GCRA)."""

    def __init__(self, rpm: int, clock: Clock, burst: int | None = None) -> None:
        self.interval = 60.0 / rpm
        self.burst = burst if burst is not None else max(1, min(rpm, 10))
        self._clock = clock
        self._tat = 0.0
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        with self._lock:
            now = self._clock.monotonic()
            tat = max(self._tat, now)
            wait = tat - now - (self.burst - 1) * self.interval
            self._tat = tat + self.interval
        if wait > 0:
            await self._clock.sleep(wait)


class Runtime:
    """The shared state clients use: clock, randomness, retry policy, breakers and limits.

    One default instance serves the process (:data:`DEFAULT_RUNTIME`); tests build their own with
    a fake clock and a seeded RNG.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        retry: RetryPolicy | None = None,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.retry = retry or RetryPolicy()
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._semaphores: dict[tuple[str, int], ProcessSemaphore] = {}
        self._rate_limiters: dict[tuple[str, int], RateLimiter] = {}

    def breaker(self, name: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name,
                    self.clock,
                    failure_threshold=self.failure_threshold,
                    cooldown_s=self.cooldown_s,
                )
                self._breakers[name] = breaker
            return breaker

    def is_open(self, name: str) -> bool:
        """True while calls to provider ``name`` fail fast (the sampler should skip its models)."""
        with self._lock:
            breaker = self._breakers.get(name)
        return breaker is not None and breaker.is_open()

    @asynccontextmanager
    async def slot(self, name: str, max_concurrency: int) -> AsyncIterator[None]:
        """Hold one of the provider's ``max_concurrency`` concurrent slots."""
        with self._lock:
            key = (name, max_concurrency)
            semaphore = self._semaphores.get(key)
            if semaphore is None:
                semaphore = self._semaphores[key] = ProcessSemaphore(max_concurrency)
        await semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()

    async def throttle(self, name: str, rpm: int | None) -> None:
        """Wait for the provider's requests-per-minute budget (no-op when ``rpm`` is None)."""
        if not rpm:
            return
        with self._lock:
            key = (name, rpm)
            limiter = self._rate_limiters.get(key)
            if limiter is None:
                limiter = self._rate_limiters[key] = RateLimiter(rpm, self.clock)
        await limiter.acquire()


DEFAULT_RUNTIME = Runtime()


def is_open(name: str) -> bool:
    """Whether provider ``name``'s circuit is open in this process (see :class:`Runtime`)."""
    return DEFAULT_RUNTIME.is_open(name)
