"""Celery adapters for the leaderboard: they call one service and own their time limits."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rating import services


@shared_task(name="rating.refresh", ignore_result=True, soft_time_limit=60, time_limit=90)
def refresh(force: bool = False) -> int:
    """Periodic (every few seconds): new snapshots from the counts if any vote was counted."""
    return len(services.leaderboard_refresh(force=force))


@shared_task(name="rating.recompute_full", soft_time_limit=600, time_limit=660)
def recompute_full(detect_anomalies: bool = True) -> dict[str, Any]:
    """Periodic (every few minutes): rebuild counts, flag anomalies, style control, weights."""
    return services.leaderboard_recompute_full(detect_anomalies=detect_anomalies)
