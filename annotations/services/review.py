"""Reviewing submitted annotations: a reviewer (or manager) approves or rejects another's work."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from annotations.models import Annotation
from annotations.services.access import require_role
from core.errors import ApplicationError, Conflict, PermissionDenied

MAX_REVIEW_NOTE_CHARS = 500


def annotation_review(
    *, annotation: Annotation, reviewer: Any, decision: str, note: str = ""
) -> Annotation:
    """Record ``decision`` ("approved" or "rejected") on a submitted annotation.

    Nobody reviews their own work; a draft or a skip cannot be reviewed (``not_reviewable``).
    A later decision replaces an earlier one. Returns the annotation, refreshed.
    """
    require_role(annotation.project, reviewer, role="reviewer")
    if decision not in (Annotation.Review.APPROVED, Annotation.Review.REJECTED):
        raise ApplicationError("Decide approved or rejected.", code="invalid_decision")
    if annotation.annotator_id == reviewer.id:
        raise PermissionDenied("You cannot review your own work.")
    with transaction.atomic():
        changed = Annotation.objects.filter(
            pk=annotation.pk, status=Annotation.Status.SUBMITTED
        ).update(
            review=decision,
            reviewed_by=reviewer,
            reviewed_at=timezone.now(),
            review_note=note[:MAX_REVIEW_NOTE_CHARS],
        )
        if not changed:
            raise Conflict("Only submitted annotations can be reviewed.", code="not_reviewable")
    annotation.refresh_from_db()
    return annotation
