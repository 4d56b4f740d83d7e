"""Leases: how a background job shows that it is still working on something.

A job that takes a row into an in-progress state (a response being generated, an annotation
being generated, a release being built) first takes a *lease* on it: a key with a time to live
in the lease store (Redis with ``REDIS_URL``, this process's memory on the embedded default).
While the job runs, this process's :class:`Keeper` renews every lease it holds in one round
trip every third of the shortest TTL. When the process dies (SIGKILL, OOM, a lost machine) its
leases lapse within one TTL, and a periodic sweeper of the job's own app finds rows that are
in progress without a live lease and ends them ("the worker was lost").

The rules every such job follows:

1. Take the lease (:func:`acquire`, atomic ``SET NX``) *before* moving the row into its
   in-progress state, so a row in that state without a lease always means a lapsed one. A task
   that cannot take it exits: another delivery of the same work holds it.
2. Make every final write conditional on the row still being in the state and attempt the job
   put it in (``UPDATE ... WHERE attempt = N AND state = 'running'``): the sweeper's write uses
   the same condition, so exactly one of them wins and a slow job whose lease lapsed cannot
   overwrite the sweeper's outcome (nor a newer attempt's).
3. :func:`release` the lease after the final write (compare-and-delete: only its own holder).
4. A sweeper judges leases only from a store older than their TTL (:func:`store_age`, counted
   from the first lease written to it): a store that has just lost its memory (a Redis restart
   without persistence) holds no lease yet, and live jobs re-create theirs at their next
   renewal, within a third of their TTL.

Keys are ``<cache prefix>:lease:<kind>:<id>...`` (:func:`lease_key`); a holder's token names
its host and process, which is what an operator reads with ``redis-cli GET``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Lease:
    """A lease this process holds; ``lost`` is set when a renewal found another holder."""

    key: str
    token: str
    ttl: float
    lost: bool = field(default=False)


def lease_key(kind: str, *parts: object) -> str:
    """The store key of the lease on ``kind`` ``parts`` (e.g. ``"arena.response", 12, 3``)."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "pa")
    return ":".join([prefix, "lease", kind, *(str(part) for part in parts)])


def _epoch_key() -> str:
    return lease_key("_store", "epoch")


class Backend(Protocol):
    def acquire(self, key: str, token: str, ttl: float) -> bool: ...

    def renew(self, leases: Sequence[Lease]) -> list[bool]: ...

    def release(self, key: str, token: str) -> bool: ...

    def alive(self, keys: Sequence[str]) -> list[bool]: ...

    def store_age(self) -> float: ...


class MemoryBackend:
    """Embedded default: one process holds every lease, the sweeper runs in the same process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def _live(self, key: str, now: float) -> str | None:
        held = self._data.get(key)
        return held[0] if held is not None and held[1] > now else None

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._data[key] = (token, now + ttl)
            return True

    def renew(self, leases: Sequence[Lease]) -> list[bool]:
        now = time.monotonic()
        renewed = []
        with self._lock:
            for lease in leases:
                holder = self._live(lease.key, now)
                ok = holder is None or holder == lease.token
                if ok:
                    self._data[lease.key] = (lease.token, now + lease.ttl)
                renewed.append(ok)
        return renewed

    def release(self, key: str, token: str) -> bool:
        with self._lock:
            held = self._data.get(key)
            if held is None or held[0] != token:
                return False
            del self._data[key]
            return True

    def alive(self, keys: Sequence[str]) -> list[bool]:
        now = time.monotonic()
        with self._lock:
            return [self._live(key, now) is not None for key in keys]

    def store_age(self) -> float:
        return time.monotonic() - self._started


# Renew a lease we hold, or re-create it when the store lost it (a Redis restart); refuse when
# another holder took it after it lapsed.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBackend:
    """Production: every worker's leases in the one Redis that sweepers read."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )

    def _pipeline(self) -> Any:
        """A pipeline that first marks when this store began to hold leases (once: ``NX``), so
        the store's age counts from the first lease written after a restart or a flush."""
        pipe = self._client.pipeline(transaction=False)
        pipe.set(_epoch_key(), repr(time.time()), nx=True)
        return pipe

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        pipe = self._pipeline()
        pipe.set(key, token, nx=True, px=_ms(ttl))
        return bool(pipe.execute()[1])

    def renew(self, leases: Sequence[Lease]) -> list[bool]:
        pipe = self._pipeline()
        for lease in leases:
            pipe.eval(_RENEW, 1, lease.key, lease.token, _ms(lease.ttl))
        return [bool(result) for result in pipe.execute()[1:]]

    def release(self, key: str, token: str) -> bool:
        return bool(self._client.eval(_RELEASE, 1, key, token))

    def alive(self, keys: Sequence[str]) -> list[bool]:
        if not keys:
            return []
        return [value is not None for value in self._client.mget(list(keys))]

    def store_age(self) -> float:
        """Seconds since this Redis began to hold leases (0 when it has just lost its memory)."""
        now = time.time()
        pipe = self._pipeline()
        pipe.get(_epoch_key())
        started = pipe.execute()[1]
        return max(0.0, now - float(started or now))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


_backend: tuple[int, Backend] | None = None
_backend_lock = threading.Lock()


def backend() -> Backend:
    """This process's lease store (re-created after a fork: a client is per process)."""
    global _backend
    with _backend_lock:
        if _backend is None or _backend[0] != os.getpid():
            url = settings.REDIS_URL
            _backend = (os.getpid(), RedisBackend(url) if url else MemoryBackend())
        return _backend[1]


class Keeper:
    """Renews this process's leases on a daemon thread, all of them in one round trip.

    A renewal that fails (the store is unreachable) is logged and retried at the next period;
    a lease whose key another holder took is marked ``lost`` and no longer renewed.
    """

    def __init__(self) -> None:
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.renewals = 0  # round trips done (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="pa-lease-keeper", daemon=True)
        self._thread.start()

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held[lease.key] = lease
        self._wake.set()  # a shorter TTL may shorten the period

    def drop(self, lease: Lease) -> None:
        with self._lock:
            if self._held.get(lease.key) is lease:
                del self._held[lease.key]

    def _period(self) -> float | None:
        with self._lock:
            return min((lease.ttl for lease in self._held.values()), default=0) / 3 or None

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            period = self._period()
            if period is None:  # nothing held: sleep until a lease comes
                self._wake.wait()
                self._wake.clear()
                last = time.monotonic()
                continue
            # A new lease only wakes us to recompute the period: a burst of acquires must not
            # turn into a burst of renewals.
            due = last + period
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if time.monotonic() < due:
                continue
            with self._lock:
                leases = list(self._held.values())
            if leases:
                self.renew(leases)
            last = time.monotonic()

    def renew(self, leases: Sequence[Lease]) -> None:
        try:
            renewed = backend().renew(leases)
        except Exception:  # noqa: BLE001 - the store is down: retry next period, jobs go on
            log.warning("leases not renewed", exc_info=True, extra={"n": len(leases)})
            return
        self.renewals += 1
        for lease, ok in zip(leases, renewed, strict=True):
            if not ok:
                lease.lost = True
                self.drop(lease)
                log.warning("lease taken by another holder", extra={"lease": lease.key})


_keeper: tuple[int, Keeper] | None = None


def keeper() -> Keeper:
    """This process's keeper, started on first use (and again in a forked child)."""
    global _keeper
    with _backend_lock:
        if _keeper is None or _keeper[0] != os.getpid():
            _keeper = (os.getpid(), Keeper())
        return _keeper[1]


def holder_token() -> str:
    """A new token naming this host and process (what an operator sees in the store)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def acquire(key: str, *, ttl: float, keep: bool = True) -> Lease | None:
    """Take the lease on ``key`` for ``ttl`` seconds; None when someone else holds it. With
    ``keep`` this process renews it until :func:`release` (without, it lapses after ``ttl``)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    lease = Lease(key=key, token=holder_token(), ttl=float(ttl))
    if not backend().acquire(key, lease.token, lease.ttl):
        return None
    if keep:
        keeper().hold(lease)
    return lease


def release(lease: Lease) -> bool:
    """Stop renewing ``lease`` and delete it if this holder still has it."""
    keeper().drop(lease)
    try:
        return backend().release(lease.key, lease.token)
    except Exception:  # noqa: BLE001 - an unreleased lease lapses by itself within its TTL
        log.warning("lease not released", exc_info=True, extra={"lease": lease.key})
        return False


def alive(keys: Sequence[str]) -> list[bool]:
    """Whether each key's lease is held (one round trip)."""
    return backend().alive(keys)


def store_age() -> float:
    """Seconds the lease store has kept its memory: a sweeper judges a lease of TTL ``t`` only
    when this is at least ``t`` (a store that just restarted has no lease renewed yet)."""
    return backend().store_age()
