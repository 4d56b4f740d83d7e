"""The Celery application: Django settings under the CELERY_ namespace, tasks autodiscovered.

Run a worker with ``celery -A config worker -Q default,stream -P threads -c 32`` and beat with
``celery -A config beat``; periodic jobs come from ``core.background.register_periodic``.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("preference_arena")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule_periodic_jobs(sender: Celery, **_: Any) -> None:
    import django

    django.setup()
    from core.background import periodic_jobs

    for job in periodic_jobs():
        sender.add_periodic_task(
            job.every,
            sender.signature(job.task_name, args=job.args, kwargs=job.kwargs),
            name=job.name,
        )


@app.task(name="config.ping")
def ping(value: str = "pong") -> str:
    """Round-trip probe: returns its argument from whichever worker ran it."""
    return value


HEARTBEAT_KEY = "background:heartbeat"


@app.task(name="config.heartbeat", ignore_result=True)
def heartbeat(key: str = HEARTBEAT_KEY) -> float:
    """Periodic job: records in the cache that background work (worker + scheduler) is alive."""
    from django.core.cache import cache

    now = time.time()
    cache.set(key, now, timeout=3600)
    return now


@signals.worker_process_init.connect
@signals.worker_init.connect
def _start_worker_metrics(**_: Any) -> None:
    port = os.environ.get("CELERY_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        # OSError: already started by the parent in prefork, or the port is taken.
        with contextlib.suppress(OSError):
            start_http_server(int(port))


@signals.worker_ready.connect
@signals.worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """The web processes' warm-up (config/warmup.py) in the process that runs the tasks: the
    threads pool's worker itself, or each prefork child."""
    from config.warmup import warm_up

    warm_up()


from config import metrics  # noqa: E402,F401  (connects the task signal handlers)
