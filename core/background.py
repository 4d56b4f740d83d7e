"""The one seam for background work.

``enqueue(task, ...)`` runs a Celery task after the current transaction commits;
``register_periodic(...)`` declares a job that runs every N seconds. With ``REDIS_URL`` set
(``BACKGROUND_MODE=celery``) they hand work to Celery workers and celery beat. On the embedded
default they run the *same task functions* on a thread pool and a small scheduler inside the web
process, so a request never waits for background work. No app knows which of the two runs it.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from celery import Task
from django.conf import settings
from django.db import close_old_connections, connections, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task_name: str
    every: float
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


_periodic: dict[str, PeriodicJob] = {}


def register_periodic(
    name: str, task_name: str, every: float, *args: Any, **kwargs: Any
) -> PeriodicJob:
    """Declare a periodic job (call from an ``AppConfig.ready``). Re-registering replaces it."""
    if every <= 0:
        raise ValueError("every must be positive")
    job = PeriodicJob(name, task_name, float(every), tuple(args), dict(kwargs))
    _periodic[name] = job
    return job


def periodic_jobs() -> list[PeriodicJob]:
    """Registered jobs plus the built-in heartbeat that proves workers and scheduler are alive."""
    heartbeat = PeriodicJob("heartbeat", "config.heartbeat", float(settings.HEARTBEAT_SECONDS))
    return [heartbeat, *(job for name, job in _periodic.items() if name != "heartbeat")]


def _lookup(task_name: str) -> Task:
    from celery import current_app as app  # the project's app (config/celery.py sets it current)

    if task_name not in app.tasks:  # importing runs Celery's Django model checks: ~30 ms a call
        app.loader.import_default_modules()
    return app.tasks[task_name]


class EmbeddedRunner:
    """Runs Celery task functions on worker threads inside this process.

    ``Task.apply`` executes the task body (with its retry logic) in the calling worker thread;
    each run gets fresh database connections and closes them afterwards, so threads never share
    a connection.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pa-bg")

    def submit(self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return self._pool.submit(self._run, task, args, kwargs)

    @staticmethod
    def _run(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        close_old_connections()
        try:
            result = task.apply(args=args, kwargs=kwargs)
            if result.failed():
                log.error(
                    "background task failed",
                    extra={"task": task.name, "traceback": result.traceback},
                )
            return result.result
        finally:
            connections.close_all()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class EmbeddedScheduler:
    """A small in-process beat: one daemon thread that submits due jobs to the runner."""

    def __init__(self, runner: EmbeddedRunner, clock: Callable[[], float] = time.monotonic):
        self._runner = runner
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, jobs: list[PeriodicJob]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(jobs,), name="pa-scheduler", daemon=True
        )
        self._thread.start()

    def _loop(self, jobs: list[PeriodicJob]) -> None:
        now = self._clock()
        queue = [(now + job.every, i, job) for i, job in enumerate(jobs)]
        heapq.heapify(queue)
        while queue and not self._stop.is_set():
            due, i, job = queue[0]
            if self._stop.wait(max(0.0, due - self._clock())):
                break
            heapq.heapreplace(queue, (max(due + job.every, self._clock()), i, job))
            try:
                self._runner.submit(_lookup(job.task_name), job.args, job.kwargs)
            except Exception:  # a broken job must not stop the others
                log.exception("periodic job could not be submitted", extra={"job": job.name})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


_runner: EmbeddedRunner | None = None
_scheduler: EmbeddedScheduler | None = None
_lock = threading.RLock()


def embedded_runner() -> EmbeddedRunner:
    global _runner
    with _lock:
        if _runner is None:
            _runner = EmbeddedRunner(settings.EMBEDDED_WORKERS)
        return _runner


def start_embedded_scheduler() -> EmbeddedScheduler:
    """Start the in-process beat (the ASGI entry point calls this on the embedded default)."""
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = EmbeddedScheduler(embedded_runner())
    _scheduler.start(periodic_jobs())
    return _scheduler


def is_embedded() -> bool:
    return settings.BACKGROUND_MODE == "embedded"


def enqueue(
    task: Task | str, *args: Any, using: str | None = None, robust: bool = True, **kwargs: Any
) -> None:
    """Run ``task(*args, **kwargs)`` in the background once the current transaction commits.

    Outside a transaction it is handed over at once. Arguments must be JSON-serialisable (ids and
    primitives): tasks re-fetch what they need. A hand-over that fails (the broker is down) is
    logged by default; with ``robust=False`` it raises instead (from the commit, or at once
    outside a transaction), for a caller that undoes its work when the task cannot be queued.
    """
    resolved = _lookup(task) if isinstance(task, str) else task

    def dispatch() -> None:
        if is_embedded():
            embedded_runner().submit(resolved, args, kwargs)
        else:
            resolved.apply_async(args=args, kwargs=kwargs)

    transaction.on_commit(dispatch, using=using, robust=robust)
