"""The streaming protocol between generation tasks and battle pages.

Producer (``arena.tasks.generate_response``) → channel layer group ``battle.<uuid hex>`` →
``BattleConsumer`` → browser (``static/js/battle.js`` on top of htmx's ws extension).

Frames are JSON objects sent to the group as ``{"type": "stream.frame", "frame": {...}}``:

- ``{"k": "delta", "r": <response uuid>, "side": "a"|"b", "epoch": int, "offset": int, "text": str}``
  ``text`` starts at character ``offset`` of the response's text for that ``epoch``. Deltas are
  coalesced by the producer (every ``ARENA_STREAM_FLUSH_SECONDS``, about 75 ms), never sent per
  token: channels-redis handles about 2,000 messages/s in total on the reference machine.
- ``{"k": "reset", "r", "side", "epoch"}``: a new epoch starts (a regenerate, or a provider retry
  after tokens had streamed); the pane is cleared. ``epoch = attempt * 1000 + restarts`` so a later
  epoch always compares greater.
- ``{"k": "snapshot", "r", "side", "epoch", "offset": 0, "text": str}``: the text so far, sent by the
  consumer when a page (re)connects or asks to resync; then the live tail follows.

The first delta of an epoch is sent as soon as it arrives (time to first token is what a voter
feels); later ones are coalesced. The interval grows with the number of streams a process is
producing (``flush_interval``) so that the total stays near 1,000 frames/s.

The partial text is written to a store (Redis in production, memory on the embedded default) at
every flush *before* the delta is sent, so a snapshot never lags the deltas the page then gets.
The page keeps (epoch, text) per pane, appends only the part of a delta beyond what it shows,
ignores older epochs, and asks for a resync when a delta starts past its end (a lost frame).

When a response finishes, the producer saves it, then sends ``{"type": "stream.html", "html": ...}``
carrying the rendered pane (markdown rendered once, server side) and the vote bar as htmx
out-of-band swaps from the same template partials the views use. The saved text is the truth the
page ends on, whatever frames were lost. Frames name responses and sides only, never a model.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings

T = TypeVar("T")

PARTIAL_TTL = 3600


def battle_group(public_id: uuid.UUID | str) -> str:
    return f"battle.{uuid.UUID(str(public_id)).hex}"


def epoch_of(attempt: int, restarts: int = 0) -> int:
    return attempt * 1000 + restarts


# --- one event loop per process for producers ---------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def use_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run producers on ``loop`` (the embedded ASGI server's loop, so the in-memory channel layer
    and the consumers share it)."""
    global _loop
    _loop = loop


def producer_loop() -> asyncio.AbstractEventLoop:
    """A long-lived loop on a daemon thread, shared by every task of this process: one Redis
    connection pool for the channel layer instead of a new connection per ``group_send``."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="pa-stream-loop", daemon=True).start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the producer loop from synchronous code and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, producer_loop()).result(timeout)


async def send_frame(public_id: uuid.UUID | str, frame: dict[str, Any]) -> None:
    await get_channel_layer().group_send(
        battle_group(public_id), {"type": "stream.frame", "frame": frame}
    )


async def send_html(public_id: uuid.UUID | str, html: str) -> None:
    await get_channel_layer().group_send(
        battle_group(public_id), {"type": "stream.html", "html": html}
    )


# --- partial text store -----------------------------------------------------------------------------


class MemoryStore:
    """Embedded default: one process, so a dict guarded by a lock is shared by tasks and pages."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    async def aset(self, key: str, value: str) -> None:
        self.set(key, value)

    async def aget(self, key: str) -> str | None:
        return self.get(key)

    async def aappend(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = self._data.get(key, "") + value

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class RedisStore:
    """Production: Redis, written by workers and read by every ASGI process."""

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio

        self._url = url
        self._sync = redis.Redis.from_url(url, decode_responses=True)
        self._async: dict[int, Any] = {}
        self._aio = redis.asyncio

    def _client(self) -> Any:
        # One async client per event loop: redis.asyncio connections are bound to their loop.
        loop_id = id(asyncio.get_running_loop())
        client = self._async.get(loop_id)
        if client is None:
            client = self._aio.Redis.from_url(self._url, decode_responses=True)
            self._async[loop_id] = client
        return client

    async def aset(self, key: str, value: str) -> None:
        await self._client().set(key, value, ex=PARTIAL_TTL)

    async def aget(self, key: str) -> str | None:
        return await self._client().get(key)  # type: ignore[no-any-return]

    async def aappend(self, key: str, value: str) -> None:
        # APPEND costs O(delta), not O(text so far); the key's TTL was set by the reset.
        await self._client().append(key, value)

    def set(self, key: str, value: str) -> None:
        self._sync.set(key, value, ex=PARTIAL_TTL)

    def get(self, key: str) -> str | None:
        return self._sync.get(key)  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        self._sync.delete(key)


_store: MemoryStore | RedisStore | None = None


def store() -> MemoryStore | RedisStore:
    global _store
    if _store is None:
        prefix_url = settings.REDIS_URL
        _store = RedisStore(prefix_url) if prefix_url else MemoryStore()
    return _store


def _partial_key(response_public_id: str) -> str:
    return (
        f"{settings.CACHES['default'].get('KEY_PREFIX', 'pa')}:arena:partial:{response_public_id}"
    )


def _stop_key(response_public_id: str, attempt: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'pa')}:arena:stop:{response_public_id}:{attempt}"


async def reset_partial(response_public_id: str, epoch: int) -> None:
    """Start an epoch with no text. Stored as ``"<epoch>\n<text>"`` so flushes can append."""
    await store().aset(_partial_key(response_public_id), f"{epoch}\n")


async def append_partial(response_public_id: str, text: str) -> None:
    await store().aappend(_partial_key(response_public_id), text)


async def load_partial(response_public_id: str) -> tuple[int, str] | None:
    raw = await store().aget(_partial_key(response_public_id))
    if not raw:
        return None
    epoch, _, text = raw.partition("\n")
    return int(epoch), text


# The process-wide number of streams being produced: the flush interval grows with it so the
# total message rate stays under what the channel layer delivers (about 2,000 messages/s in
# total on the reference machine; see shared/reference/web_calibration.md).
_active = 0
MAX_FRAMES_PER_SECOND = 1000.0


def stream_started() -> None:
    global _active
    _active += 1


def stream_finished() -> None:
    global _active
    _active = max(0, _active - 1)


def flush_interval(base: float) -> float:
    return max(base, _active / MAX_FRAMES_PER_SECOND)


def request_stop(response_public_id: str, attempt: int) -> None:
    store().set(_stop_key(response_public_id, attempt), "1")


async def stop_requested(response_public_id: str, attempt: int) -> bool:
    return bool(await store().aget(_stop_key(response_public_id, attempt)))
