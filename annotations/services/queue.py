"""The queue: handing items to annotators (claims) and returning stale locks to the pool.

An assignment is an annotator's lock on one item for the project's TTL. ``Item.taken`` counts the
live assignments of a non-gold item (unexpired active plus submitted) and never exceeds the
project's overlap: it only grows through a conditional ``UPDATE ... WHERE taken < overlap``.

Two implementations of one set of rules: on PostgreSQL a claim is one round trip (the SQL is in
``queue_postgresql``); elsewhere (SQLite, the embedded default) the portable path below runs the
same rules in several queries.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotations.metrics import CLAIMS
from annotations.models import Assignment, Item, Project
from annotations.services.access import require_role
from annotations.services.queue_postgresql import CLAIM_ATTEMPTS, claim_postgresql
from core.errors import Conflict

GOLD_CANDIDATES = 50  # a gold item is drawn at random among this many


def assignments_expire(*, project: Project | None = None, now: datetime | None = None) -> int:
    """Return stale locks to the pool (up to 1000 per call). Safe to run concurrently with
    claims and submits. Returns how many expired.

    The conditional ``UPDATE ... WHERE state='active' AND expires_at <= now`` means two sweepers
    (or a sweeper and a late submit) never both win: only the one that changed the row gives the
    item's place back.
    """
    now = now or timezone.now()
    qs = Assignment.objects.stale(now)
    if project is not None:
        qs = qs.filter(project=project)
    n = 0
    for a_id, item_id, is_gold in qs.values_list("id", "item_id", "is_gold")[:1000]:
        with transaction.atomic():
            won = Assignment.objects.filter(
                id=a_id, state=Assignment.State.ACTIVE, expires_at__lte=now
            ).update(state=Assignment.State.EXPIRED)
            if won:
                n += 1
                if not is_gold:
                    Item.objects.filter(id=item_id, taken__gt=0).update(taken=F("taken") - 1)
    return n


def assignment_claim(
    *, project: Project, annotator: Any, now: datetime | None = None, skip_locked: bool = True
) -> Assignment | None:
    """Hand ``annotator`` one item of ``project``, locked to them for the project's TTL.

    Order: their own unexpired assignment; a gold item when one is due at the project's rate;
    otherwise the non-gold item closest to completion (most live assignments) that they have not
    done or held and that has room (``taken < overlap``). ``None`` when nothing is left.

    Races prevented: two annotators choosing the same row (``SELECT ... FOR UPDATE SKIP
    LOCKED`` makes the second one take the next row instead of waiting); an item filling up
    between our read and our write (the conditional ``UPDATE ... SET taken = taken + 1 WHERE
    taken < overlap`` is re-checked on the latest row version, so overlap can't be exceeded);
    a double click by the same annotator (the unique (item, annotator) constraint).

    ``skip_locked=False`` waits on rows other claimers hold instead (the portable path, also on
    PostgreSQL). Raises ``NotFound``/``PermissionDenied`` for non-annotators and ``Conflict``
    (``project_paused``) when the project is paused.
    """
    if not project.active:
        require_role(project, annotator, role="annotator")  # outsiders learn nothing, not even this
        raise Conflict("This project is paused.", code="project_paused")
    now = now or timezone.now()
    if connection.vendor == "postgresql" and skip_locked:
        return claim_postgresql(project, annotator, now)
    return _claim_portable(project, annotator, now, skip_locked=skip_locked)


# --- the portable path -----------------------------------------------------------------------------


def _require_annotator(project: Project, user: Any) -> None:
    """One query on the hot path (``roles_for`` costs three)."""
    is_annotator = (
        Project.objects.filter(pk=project.pk)
        .filter(Q(annotators=user) | Q(annotator_groups__user=user))
        .exists()
    )
    if not is_annotator:
        require_role(project, user, role="annotator")  # raises the right error


def _gold_due(project: Project, annotator: Any) -> bool:
    """Whether the annotator's next task should be gold to keep their share at the project's rate."""
    if project.gold_rate <= 0:
        return False
    counts = (
        Assignment.objects.filter(project=project, annotator=annotator)
        .exclude(state=Assignment.State.EXPIRED)
        .aggregate(total=Count("id"), gold=Count("id", filter=Q(is_gold=True)))
    )
    return counts["gold"] < math.floor(project.gold_rate * (counts["total"] + 1) + 1e-9)


def _own_assignments(
    project: Project, annotator: Any, now: datetime
) -> tuple[Assignment | None, set[int]]:
    """The annotator's oldest live assignment, and the items of their expired ones."""
    own_live: Assignment | None = None
    expired_items: set[int] = set()
    for a in Assignment.objects.filter(project=project, annotator=annotator).filter(
        Q(state=Assignment.State.ACTIVE, expires_at__gt=now) | Q(state=Assignment.State.EXPIRED)
    ):
        if a.state == Assignment.State.EXPIRED:
            expired_items.add(a.item_id)
        elif own_live is None or a.created < own_live.created:
            own_live = a
    return own_live, expired_items


def _claim_portable(
    project: Project, annotator: Any, now: datetime, *, skip_locked: bool
) -> Assignment | None:
    _require_annotator(project, annotator)
    assignments_expire(project=project, now=now)
    own_live, expired_items = _own_assignments(project, annotator, now)
    if own_live is not None:
        return own_live
    for gold in (True, False) if _gold_due(project, annotator) else (False,):
        claimed = _claim_kind(
            project, annotator, gold=gold, now=now, skip_locked=skip_locked,
            expired_items=expired_items,
        )  # fmt: skip
        if claimed is not None:
            return claimed
    return None


def _claim_kind(
    project: Project,
    annotator: Any,
    *,
    gold: bool,
    now: datetime,
    skip_locked: bool,
    expired_items: set[int],
) -> Assignment | None:
    """A gold (or a regular) item, retrying lost races; ``None`` when that pool is empty."""
    for _attempt in range(CLAIM_ATTEMPTS):
        try:
            result = _claim_one(
                project, annotator, gold=gold, now=now, skip_locked=skip_locked,
                expired_items=expired_items,
            )  # fmt: skip
        except IntegrityError:
            # The same annotator claimed concurrently (unique item+annotator): use theirs.
            own = (
                Assignment.objects.live_active(now)
                .filter(project=project, annotator=annotator)
                .first()
            )
            if own is not None:
                return own
            continue
        if result is None:
            return None  # pool empty
        if result is not False:
            CLAIMS.labels(kind="gold" if gold else "regular").inc()
            return result
    return None


def _pick_item(project: Project, annotator: Any, *, gold: bool, skip_locked: bool) -> int | None:
    """Lock and return a candidate item's id (inside the caller's transaction)."""
    held_or_done = Assignment.objects.filter(annotator=annotator, project=project).exclude(
        state=Assignment.State.EXPIRED
    )
    candidates = (
        Item.objects.filter(project=project, is_gold=gold)
        .exclude(id__in=held_or_done.values("item_id"))
        .order_by("-taken", "id")
    )
    if not gold:
        candidates = candidates.filter(taken__lt=project.overlap)
    if connection.features.has_select_for_update_skip_locked and skip_locked:
        candidates = candidates.select_for_update(skip_locked=True)
    elif connection.features.has_select_for_update:
        candidates = candidates.select_for_update()
    if gold:
        # gold items are shared by everyone: take one at random so annotators differ
        ids = list(candidates.values_list("id", flat=True)[:GOLD_CANDIDATES])
        return random.choice(ids) if ids else None
    return next(iter(candidates.values_list("id", flat=True)[:1]), None)


def _claim_one(
    project: Project,
    annotator: Any,
    *,
    gold: bool,
    now: datetime,
    skip_locked: bool,
    expired_items: set[int],
) -> Assignment | None | bool:
    """One attempt: the claimed assignment, ``None`` if the pool is empty, ``False`` to retry."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A claim is a lease, not data: if the server crashed before this commit reached
            # disk, the item would simply be free again and the annotator would ask again. Not
            # waiting for the WAL flush doubles throughput; submits stay fully durable.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        item_id = _pick_item(project, annotator, gold=gold, skip_locked=skip_locked)
        if item_id is None:
            return None
        if not gold:
            grew = Item.objects.filter(id=item_id, taken__lt=project.overlap).update(
                taken=F("taken") + 1
            )
            if not grew:
                return False
        order = project.new_display_order()
        expires = now + timedelta(seconds=project.lock_ttl_seconds)
        if item_id in expired_items:
            revived = Assignment.objects.filter(
                item_id=item_id, annotator=annotator, state=Assignment.State.EXPIRED
            ).update(state=Assignment.State.ACTIVE, expires_at=expires, created=now)
            if revived:
                return Assignment.objects.get(item_id=item_id, annotator=annotator)
        return Assignment.objects.create(
            project=project,
            item_id=item_id,
            annotator=annotator,
            is_gold=gold,
            display_order=order,
            expires_at=expires,
            created=now,
        )
