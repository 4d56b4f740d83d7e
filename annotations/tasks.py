"""Celery adapters: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from annotations import services


@shared_task(
    name="annotations.tasks.generate_item",
    acks_late=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=3,
)
def generate_item(job_id: int, index: int) -> None:
    """Idempotent: a retried or duplicated delivery finds the item already there."""
    services.generation_run_one(job_id=job_id, index=index)


@shared_task(name="annotations.tasks.expire_assignments")
def expire_assignments() -> int:
    return services.assignments_expire()
