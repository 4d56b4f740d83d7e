"""The streaming protocol between generation tasks and battle pages.

Producer (``arena.generation.ResponseStream``, run by the task ``arena.tasks.generate_response``)
→ channel layer group ``battle.<uuid hex>`` → ``BattleConsumer`` → browser (``static/js/arena.js``
on top of htmx's ws extension).

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

Producers never wait for Redis per flush: they hand their writes to the process's ``Publisher``,
which sends everything queued since its last round trip as one pipeline (SET/APPEND of the
partial text, then PUBLISH of the frame, in the order posted) and starts the next round trip as
soon as the last one returns (group commit). channels-redis publishes one message per round trip
under a per-connection lock, so 100 streams per process queued behind each other there; a burst
of first tokens now goes out in the next round trip.

The page keeps (epoch, text) per pane, appends only the part of a delta beyond what it shows,
ignores older epochs, and asks for a resync when a delta starts past its end (a lost frame).

When a response finishes, the producer saves it, then sends ``{"type": "stream.html", "html": ...}``
carrying the rendered pane (markdown rendered once, server side), the vote bar and the composer as
htmx out-of-band swaps from the same template partials the views use (``arena/fragments.py``). The saved text is the truth the
page ends on, whatever frames were lost. Frames name responses and sides only, never a model.

When the producer's process dies mid-stream, no frame comes any more: its lease on the attempt
lapses and the lease sweeper (``arena/recovery.py``) saves the response as failed and sends the
same ``stream.html`` (the failed pane with its Regenerate button). It also sets the attempt's
stop flag, so a producer that was only slow ends its stream at its next check instead of sending
frames after the pane. A Stop on a response nobody produces any more saves it and sends the
pane from the web process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings

T = TypeVar("T")
log = logging.getLogger(__name__)

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


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it is, with uvicorn[standard]): the producers spend most
    of their CPU in event-loop machinery, one network read per token of every stream."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def producer_loop() -> asyncio.AbstractEventLoop:
    """A long-lived loop on a daemon thread, shared by every task of this process: one Redis
    pool and one ``Publisher`` for all its streams."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = _new_loop()
            threading.Thread(target=loop.run_forever, name="pa-stream-loop", daemon=True).start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the producer loop from synchronous code and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, producer_loop()).result(timeout)


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
            # A blocking pool: a burst of sockets connecting at once waits for a connection
            # instead of failing with "Too many connections".
            pool = self._aio.BlockingConnectionPool.from_url(
                self._url, decode_responses=True, max_connections=64, timeout=20
            )
            client = self._aio.Redis(connection_pool=pool)
            self._async[loop_id] = client
        return client

    def pipeline(self) -> Any:
        return self._client().pipeline(transaction=False)

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


def saved_partial(response_public_id: str, attempt: int) -> str:
    """The text published so far for ``attempt`` (from synchronous code): '' when there is
    none, or when the store holds another attempt's text."""
    raw = store().get(_partial_key(response_public_id))
    if not raw:
        return ""
    epoch, _, text = raw.partition("\n")
    return text if int(epoch) // 1000 == attempt else ""


# The process-wide number of streams being produced: the flush interval grows with it so the
# total message rate stays under what the channel layer delivers (the Redis pub/sub layer
# saturated at about 2,000 messages/s in total when calibrated; 1,000 frames/s leaves headroom).
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


@dataclass(slots=True)
class _Post:
    group: str
    frame: dict[str, Any]
    partial_key: str | None
    text: str | None  # appended to the partial text (None: the frame starts a new epoch)
    epoch: int | None  # set for a reset: the partial text becomes "<epoch>\n"
    stop_key: str | None  # read in the same round trip when a stop check is due
    future: asyncio.Future[bool]


class Publisher:
    """Batches the stream writes of every producer on this process's loop (see the module doc).

    ``post`` queues a frame and its store write and returns a future that resolves, once they
    are out, to whether a stop was requested (when ``stop_key`` was read). Live frames are best
    effort: a failed round trip is logged and the stream goes on, because the saved final text
    is what the page ends on.
    """

    def __init__(self) -> None:
        self._queue: list[_Post] = []
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    def post(
        self,
        public_id: uuid.UUID | str,
        frame: dict[str, Any],
        *,
        response_public_id: str,
        text: str | None = None,
        epoch: int | None = None,
        stop_attempt: int | None = None,
    ) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append(
            _Post(
                group=battle_group(public_id),
                frame=frame,
                partial_key=_partial_key(response_public_id),
                text=text,
                epoch=epoch,
                stop_key=(
                    _stop_key(response_public_id, stop_attempt)
                    if stop_attempt is not None
                    else None
                ),
                future=future,
            )
        )
        if self._runner is None or self._runner.done():
            self._wake = asyncio.Event()
            self._runner = loop.create_task(self._run())
        assert self._wake is not None
        self._wake.set()
        return future

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                stops = await self._write(batch)
            except Exception:  # noqa: BLE001 - live frames are best effort (module doc)
                log.warning("stream frames not delivered", exc_info=True, extra={"n": len(batch)})
                stops = [False] * len(batch)
            for post, stop in zip(batch, stops, strict=True):
                if not post.future.done():
                    post.future.set_result(stop)

    async def _write(self, batch: list[_Post]) -> list[bool]:
        layer = get_channel_layer()
        st = store()
        if isinstance(st, RedisStore) and _single_redis_pubsub(layer):
            pipe = st.pipeline()
            reads: list[int | None] = []
            n = 0
            for p in batch:
                if p.epoch is not None:
                    pipe.set(p.partial_key, f"{p.epoch}\n", ex=PARTIAL_TTL)
                    n += 1
                if p.text:
                    pipe.append(p.partial_key, p.text)
                    n += 1
                pipe.publish(
                    layer._get_group_channel_name(p.group),
                    layer.serialize({"type": "stream.frame", "frame": p.frame}),
                )
                n += 1
                if p.stop_key:
                    pipe.get(p.stop_key)
                    reads.append(n)
                    n += 1
                else:
                    reads.append(None)
            results = await pipe.execute()
            return [i is not None and bool(results[i]) for i in reads]
        # Embedded default (in-memory store and layer): the same writes, one by one, in order.
        stops = []
        for p in batch:
            if p.epoch is not None and p.partial_key:
                await st.aset(p.partial_key, f"{p.epoch}\n")
            if p.text and p.partial_key:
                await st.aappend(p.partial_key, p.text)
            await layer.group_send(p.group, {"type": "stream.frame", "frame": p.frame})
            stops.append(bool(p.stop_key and await st.aget(p.stop_key)))
        return stops


def _single_redis_pubsub(layer: Any) -> bool:
    """The production layer with one Redis host: its group channels can be published to from
    our own pipeline (same server as the store: both are ``REDIS_URL``)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    return isinstance(layer, RedisPubSubChannelLayer) and len(layer._get_layer()._shards) == 1


_publishers: dict[int, tuple[asyncio.AbstractEventLoop, Publisher]] = {}


def publisher() -> Publisher:
    """The running loop's publisher."""
    loop = asyncio.get_running_loop()
    hit = _publishers.get(id(loop))
    if hit is None or hit[0] is not loop:  # (a closed loop's id can be reused)
        hit = _publishers[id(loop)] = (loop, Publisher())
    return hit[1]


def request_stop(response_public_id: str, attempt: int) -> None:
    store().set(_stop_key(response_public_id, attempt), "1")
