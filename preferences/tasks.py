"""Celery adapters: take ids, call one service, own retries and time limits."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from preferences import services

log = logging.getLogger(__name__)


@shared_task(
    name="preferences.tasks.build_release",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def build_release(release_id: int) -> str:
    """Build one dataset release. Idempotent: the service takes the release's lease and claims
    it before writing."""
    release = services.release_build(release_id=release_id)
    return release.status if release is not None else "skipped"


@shared_task(
    name="preferences.tasks.sweep_releases",
    ignore_result=True,
    # Sweeps beat sent while no worker ran are dropped, not run back to back.
    expires=settings.PREFERENCES_RELEASE_SWEEP_SECONDS,
)
def sweep_releases() -> int:
    """End the release builds of dead workers as failed (with Retry)."""
    ended = services.releases_sweep()
    if ended:
        log.warning("release sweep", extra={"ended": ended})
    return len(ended)
