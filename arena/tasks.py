"""Celery adapters for generation: one task per response attempt (the path is arena.generation)
and the periodic lease sweep (arena.recovery).

Idempotent: a redelivered task for an attempt that another worker holds, or that is already
finished or superseded, exits without touching anything.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import connection

from arena import generation, recovery
from arena.fragments import push_live_update
from core import leases

log = logging.getLogger(__name__)


@shared_task(
    name="arena.generate_response",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=900,
    time_limit=960,
)
def generate_response(response_pk: int, attempt: int) -> str:
    """Take the attempt's lease, claim it, stream it with no database connection held, save it,
    push the pane, release the lease."""
    lease = generation.response_lease(response_pk=response_pk, attempt=attempt)
    if lease is None:
        return "skipped"  # another delivery of this attempt is running it
    try:
        return _generate(lease, response_pk, attempt)
    finally:
        leases.release(lease)


def _generate(lease: leases.Lease, response_pk: int, attempt: int) -> str:
    job = generation.response_claim(response_pk=response_pk, attempt=attempt)
    if job is None:
        return "skipped"  # finished, stopped, superseded by a regenerate, or swept
    if not connection.in_atomic_block:  # (tests may run the task inside their transaction)
        connection.close()  # hold no database connection while streaming
    started = time.monotonic()
    outcome = generation.response_stream(job)
    if generation.response_finish(job=job, outcome=outcome, lease=lease):
        push_live_update(job.battle_public_id)
    seconds = round(time.monotonic() - started, 3)
    log.info(
        "generation finished",
        extra={"response": job.public_id, "outcome": outcome.kind, "seconds": seconds},
    )
    return outcome.kind


@shared_task(
    name="arena.sweep_responses",
    ignore_result=True,
    # Sweeps beat sent while no worker ran are dropped, not run back to back.
    expires=settings.ARENA_LEASE_SWEEP_SECONDS,
)
def sweep_responses() -> dict[str, int]:
    """End the responses of dead workers and hand over the pending ones nobody took."""
    sweep = recovery.responses_sweep()
    if sweep.lost or sweep.requeued:
        log.warning("lease sweep", extra={"lost": len(sweep.lost), "requeued": len(sweep.requeued)})
    return {"lost": len(sweep.lost), "requeued": len(sweep.requeued), "waited": sweep.waited}
