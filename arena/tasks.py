"""Celery adapter for generation: one task per response attempt (the path is arena.generation).

Idempotent: a redelivered task for an attempt that is already finished or superseded does nothing.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.db import connection

from arena import generation
from arena.fragments import push_live_update

log = logging.getLogger(__name__)


@shared_task(
    name="arena.generate_response",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=900,
    time_limit=960,
)
def generate_response(response_pk: int, attempt: int) -> str:
    """Claim the attempt, stream it with no database connection held, save it, push the pane."""
    job = generation.response_claim(response_pk=response_pk, attempt=attempt)
    if job is None:
        return "skipped"  # finished, stopped, superseded by a regenerate, or already running
    if not connection.in_atomic_block:  # (tests may run the task inside their transaction)
        connection.close()  # hold no database connection while streaming
    started = time.monotonic()
    outcome = generation.response_stream(job)
    if generation.response_finish(job=job, outcome=outcome):
        push_live_update(job.battle_public_id)
    seconds = round(time.monotonic() - started, 3)
    log.info(
        "generation finished",
        extra={"response": job.public_id, "outcome": outcome.kind, "seconds": seconds},
    )
    return outcome.kind
