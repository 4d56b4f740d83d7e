"""What an annotator does with a claimed assignment: autosave a draft, submit, or skip it.

Each write locks the assignment row and checks it is the annotator's own; answers are checked
by ``answers`` before any lock is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotations.metrics import ANNOTATIONS
from annotations.models import Annotation, Assignment, Item
from annotations.services.answers import (
    MAX_COMMENT_CHARS,
    Answer,
    AnswerInput,
    InvalidAnswer,
    answer_clean,
    answer_input,
)
from core.errors import Conflict, NotFound

AnswerData = AnswerInput | Mapping[str, Any]


def _clean(assignment: Assignment, data: AnswerData, *, final: bool) -> Answer:
    answer = data if isinstance(data, AnswerInput) else answer_input(data)
    return answer_clean(assignment.project, assignment.item, answer, final=final)


def _own_assignment_for_update(assignment: Assignment, annotator: Any) -> Assignment:
    a = (
        # of=self: lock only the assignment row. Locking the joined item and project rows too
        # deadlocks against claims, which hold the item row and key-share the project row.
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "item")
        .get(pk=assignment.pk)
    )
    if a.annotator_id != annotator.id:
        raise NotFound("No such task.")
    return a


def _upsert_annotation(a: Assignment, **fields: Any) -> Annotation:
    ann, _ = Annotation.objects.update_or_create(
        assignment=a,
        defaults={
            "project_id": a.project_id,
            "item_id": a.item_id,
            "annotator_id": a.annotator_id,
            **fields,
        },
    )
    return ann


def _answer_fields(answer: Answer) -> dict[str, Any]:
    return {
        "ranking": answer.ranking,
        "labels": answer.labels,
        "flags": answer.flags,
        "comment": answer.comment,
        "time_spent_ms": answer.time_spent_ms,
    }


def annotation_save_draft(
    *, assignment: Assignment, annotator: Any, data: AnswerData, now: datetime | None = None
) -> Annotation:
    """Autosave: keep the partial answer and extend the lock (the annotator is still working).

    ``data`` is an ``AnswerInput`` or a mapping ``answers.answer_input`` reads. Raises
    ``Conflict`` (``assignment_closed``) once the assignment is no longer live.
    """
    now = now or timezone.now()
    answer = _clean(assignment, data, final=False)
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        if not a.is_live(now):
            raise Conflict("This task is no longer yours to edit.", code="assignment_closed")
        Assignment.objects.filter(pk=a.pk).update(
            expires_at=max(a.expires_at, now + timedelta(seconds=a.project.lock_ttl_seconds))
        )
        return _upsert_annotation(a, status=Annotation.Status.DRAFT, **_answer_fields(answer))


def _reopen_if_expired(a: Assignment) -> None:
    """A late submit after the lock lapsed is still accepted while the item has room."""
    if a.state == Assignment.State.ACTIVE:  # live, or lapsed but not swept: its place counts
        return
    if a.state != Assignment.State.EXPIRED:
        raise Conflict("This task is already finished.", code="assignment_closed")
    if not a.is_gold:
        grew = Item.objects.filter(id=a.item_id, taken__lt=a.project.overlap).update(
            taken=F("taken") + 1
        )
        if not grew:
            raise Conflict(
                "Your lock expired and other annotators completed this item.",
                code="assignment_expired",
            )


def annotation_submit(
    *, assignment: Assignment, annotator: Any, data: AnswerData, now: datetime | None = None
) -> Annotation:
    """Store the final answer and finish the assignment (its place on the item stays taken).

    ``data`` is an ``AnswerInput`` or a mapping ``answers.answer_input`` reads. Raises
    ``Conflict``: ``assignment_closed`` if already finished, ``assignment_expired`` if the lock
    lapsed, was swept and the item has since filled up.
    """
    now = now or timezone.now()
    answer = _clean(assignment, data, final=True)
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        _reopen_if_expired(a)
        a.state = Assignment.State.SUBMITTED
        a.finished_at = now
        a.save(update_fields=["state", "finished_at"])
        Item.objects.filter(pk=a.item_id).update(submitted=F("submitted") + 1)
        ann = _upsert_annotation(
            a,
            status=Annotation.Status.SUBMITTED,
            **_answer_fields(answer),
            skip_reason="",
            submitted_at=now,
        )
        slug = a.project.slug
        transaction.on_commit(lambda: ANNOTATIONS.labels(project=slug, outcome="submitted").inc())
    return ann


def assignment_skip(
    *,
    assignment: Assignment,
    annotator: Any,
    reason: str,
    comment: str = "",
    now: datetime | None = None,
) -> Annotation:
    """Give the assignment up with a reason; a live one's place goes back to the pool."""
    if reason not in Annotation.SkipReason.values:
        raise InvalidAnswer("Choose a reason for skipping.")
    now = now or timezone.now()
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        if a.state not in (Assignment.State.ACTIVE, Assignment.State.EXPIRED):
            raise Conflict("This task is already finished.", code="assignment_closed")
        if a.state == Assignment.State.ACTIVE and not a.is_gold:
            # the item's place goes back to the pool for someone else
            Item.objects.filter(id=a.item_id, taken__gt=0).update(taken=F("taken") - 1)
        a.state = Assignment.State.SKIPPED
        a.finished_at = now
        a.save(update_fields=["state", "finished_at"])
        ann = _upsert_annotation(
            a,
            status=Annotation.Status.SKIPPED,
            skip_reason=reason,
            comment=comment[:MAX_COMMENT_CHARS],
        )
        slug = a.project.slug
        transaction.on_commit(lambda: ANNOTATIONS.labels(project=slug, outcome="skipped").inc())
    return ann
