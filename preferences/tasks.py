"""Celery adapters: take ids, call one service, own retries and time limits."""

from __future__ import annotations

from celery import shared_task

from preferences import services


@shared_task(
    name="preferences.tasks.build_release",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def build_release(release_id: int) -> str:
    """Build one dataset release. Idempotent: the service claims the release before writing."""
    release = services.release_build(release_id=release_id)
    return release.status if release is not None else "skipped"
