"""Leaderboard snapshots: one fitted leaderboard per (source, category, style control).

Pages and the API only ever read the latest snapshot, so a request never fits anything.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from rating.engine.leaderboard import TIE_MEANINGS


class LeaderboardSnapshot(models.Model):
    class Source(models.TextChoices):
        ARENA = "arena", "Arena votes"
        ANNOTATION = "annotation", "Annotators' rankings"

    class Trigger(models.TextChoices):
        LIVE = "live", "New votes (debounced)"
        FULL = "full", "Periodic full recompute"
        MANUAL = "manual", "Operator"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.ARENA)
    category = models.CharField(max_length=32)
    style_control = models.BooleanField(default=False)
    method = models.CharField(max_length=32, default="bradley-terry")
    params = models.JSONField(default=dict, help_text="Engine method and fitted parameters.")
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.LIVE)
    computed_at = models.DateTimeField(default=timezone.now)
    votes_counted = models.PositiveIntegerField(default=0)
    flagged_excluded = models.PositiveIntegerField(default=0)
    counts_version = models.BigIntegerField(
        default=0, help_text="Sum of all vote counts when fitted (change detection)."
    )
    rows = models.JSONField(default=list)
    matrices = models.JSONField(default=dict)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-computed_at", "-id"]
        get_latest_by = ["computed_at", "id"]
        indexes = [
            models.Index(
                fields=["source", "category", "style_control", "-computed_at"],
                name="snapshot_latest_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=["arena", "annotation"]), name="snapshot_source_valid"
            ),
        ]

    def __str__(self) -> str:
        style = " (style control)" if self.style_control else ""
        return f"{self.source}/{self.category}{style} at {self.computed_at:%Y-%m-%d %H:%M:%S}"

    @property
    def rated_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("score") is not None]

    @property
    def is_empty(self) -> bool:
        return self.votes_counted == 0

    @property
    def status(self) -> dict[str, Any]:
        """The board's status (``rating.engine.quality``): status ("ok", "regularised",
        "withheld", "empty"), reason, decisive_votes, needed_votes, prior_sd, intervals.
        Snapshots stored before statuses existed read as "ok" (or "empty")."""
        stored = (self.params or {}).get("status") or {}
        default = {
            "status": "empty" if self.is_empty else "ok", "reason": None,
            "decisive_votes": None, "needed_votes": None, "prior_sd": None, "intervals": None,
        }  # fmt: skip
        return {**default, **stored}

    @property
    def excluded(self) -> dict[str, Any]:
        """The votes left out: {"total": n, "by_reason": {flag: n}} (a vote with two flags
        counts under both, once in the total)."""
        stored = (self.params or {}).get("excluded")
        return stored or {"total": self.flagged_excluded, "by_reason": {}}

    @property
    def tie_model(self) -> str:
        return str(((self.params or {}).get("method") or {}).get("ties") or "half")

    @property
    def tie_model_meaning(self) -> str:
        return TIE_MEANINGS.get(self.tie_model, self.tie_model)
