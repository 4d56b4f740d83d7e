"""Prometheus metrics the apps add to (django-prometheus covers requests, DB and cache)."""

from __future__ import annotations

import time
from typing import Any

from celery import signals
from prometheus_client import Counter, Histogram

TASKS = Counter("pa_tasks_total", "Background tasks finished", ["task", "state"])
TASK_SECONDS = Histogram("pa_task_seconds", "Background task run time", ["task"])

_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    name = getattr(task, "name", "unknown")
    TASKS.labels(task=name, state=state or "UNKNOWN").inc()
    started = _started.pop(task_id or "", None)
    if started is not None:
        TASK_SECONDS.labels(task=name).observe(time.perf_counter() - started)
