"""The queue: own assignment first, gold at the rate, closest to completion, overlap, expiry."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotations import services
from annotations.models import Assignment, Item
from core.errors import Conflict, NotFound, PermissionDenied
from tests.annotations import factories as f

pytestmark = pytest.mark.django_db


def test_claim_returns_own_unexpired_assignment_first() -> None:
    ann = f.user()
    p = f.project(annotators=[ann])
    f.items(p, 3)
    first = services.assignment_claim(project=p, annotator=ann)
    again = services.assignment_claim(project=p, annotator=ann)
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1


def test_claim_prefers_items_closest_to_completion() -> None:
    a, b = f.user(), f.user()
    p = f.project(annotators=[a, b], overlap=3)
    items = f.items(p, 3)
    first = services.assignment_claim(project=p, annotator=a)
    services.annotation_submit(
        assignment=first, annotator=a, data=f.answer(first.item, [[0], [1], [2]])
    )
    second = services.assignment_claim(project=p, annotator=b)
    assert second.item_id == first.item_id  # the item one step from completion goes first
    assert first.item_id == items[0].id


def test_claim_never_gives_an_item_done_or_held_and_respects_overlap() -> None:
    users = [f.user() for _ in range(5)]
    p = f.project(annotators=users, overlap=2)
    f.items(p, 4)
    seen: Counter[int] = Counter()
    for u in users:
        got = []
        while (a := services.assignment_claim(project=p, annotator=u)) is not None:
            assert a.item_id not in got
            got.append(a.item_id)
            services.annotation_submit(
                assignment=a, annotator=u, data=f.answer(a.item, [[0], [1, 2]])
            )
        seen.update(got)
    assert all(n == 2 for n in seen.values()) and len(seen) == 4
    assert set(Item.objects.values_list("taken", flat=True)) == {2}
    assert set(Item.objects.values_list("submitted", flat=True)) == {2}


def test_gold_items_are_served_at_the_project_rate_and_never_twice() -> None:
    ann = f.user()
    p = f.project(annotators=[ann], gold_rate=0.25, overlap=1)
    f.items(p, 12)
    gold = f.items(p, 2, gold=True)
    kinds = []
    for _ in range(8):
        a = services.assignment_claim(project=p, annotator=ann)
        kinds.append(a.is_gold)
        services.annotation_submit(
            assignment=a, annotator=ann, data=f.answer(a.item, [[0], [1], [2]])
        )
    assert kinds.count(True) == 2  # every 4th task
    assert kinds[3] and kinds[7]
    served_gold = set(Assignment.objects.filter(is_gold=True).values_list("item_id", flat=True))
    assert served_gold == {g.id for g in gold}


def test_expired_lock_returns_the_item_to_the_pool() -> None:
    a, b = f.user(), f.user()
    p = f.project(annotators=[a, b], overlap=1, lock_ttl_seconds=60)
    (item,) = f.items(p, 1)
    held = services.assignment_claim(project=p, annotator=a)
    assert services.assignment_claim(project=p, annotator=b) is None  # overlap 1, held by a
    later = timezone.now() + timedelta(seconds=61)
    got = services.assignment_claim(project=p, annotator=b, now=later)
    assert got is not None and got.item_id == item.id
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    item.refresh_from_db()
    assert item.taken == 1
    # a's late submit is refused: the item is full again with b
    with pytest.raises(Conflict):
        services.annotation_submit(
            assignment=held, annotator=a, data=f.answer(item, [[0], [1], [2]]), now=later
        )


def test_late_submit_is_accepted_while_the_item_has_room() -> None:
    a = f.user()
    p = f.project(annotators=[a], overlap=2, lock_ttl_seconds=60)
    (item,) = f.items(p, 1)
    held = services.assignment_claim(project=p, annotator=a)
    later = timezone.now() + timedelta(seconds=120)
    assert services.assignments_expire(now=later) == 1
    services.annotation_submit(
        assignment=held, annotator=a, data=f.answer(item, [[0], [1], [2]]), now=later
    )
    item.refresh_from_db()
    assert (item.taken, item.submitted) == (1, 1)


def test_skip_frees_the_place_and_is_not_served_again() -> None:
    a, b = f.user(), f.user()
    p = f.project(annotators=[a, b], overlap=1)
    (item,) = f.items(p, 1)
    held = services.assignment_claim(project=p, annotator=a)
    services.assignment_skip(assignment=held, annotator=a, reason="unsure")
    assert services.assignment_claim(project=p, annotator=a) is None
    assert services.assignment_claim(project=p, annotator=b).item_id == item.id


def test_outsider_and_paused_project_cannot_claim() -> None:
    p = f.project()
    f.items(p, 1)
    with pytest.raises(NotFound):
        services.assignment_claim(project=p, annotator=f.user())
    reviewer = f.user()
    p.reviewers.add(reviewer)
    with pytest.raises(PermissionDenied):
        services.assignment_claim(project=p, annotator=reviewer)
    ann = f.user()
    p.annotators.add(ann)
    p.active = False
    p.save()
    with pytest.raises(Conflict):
        services.assignment_claim(project=p, annotator=ann)


def test_group_membership_grants_annotation() -> None:
    from django.contrib.auth.models import Group

    g = Group.objects.create(name="raters")
    u = f.user()
    u.groups.add(g)
    p = f.project()
    p.annotator_groups.add(g)
    f.items(p, 1)
    assert services.assignment_claim(project=p, annotator=u) is not None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_annotators_never_double_assign_on_postgresql() -> None:
    assert connection.vendor == "postgresql"
    users = [f.user() for _ in range(20)]
    p = f.project(annotators=users, overlap=3, k=2, label_schema=[])
    f.items(p, 40)  # 120 places for 20 annotators: contention on every claim
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def work(u) -> None:
        try:
            barrier.wait()
            while (a := services.assignment_claim(project=p, annotator=u)) is not None:
                services.annotation_submit(
                    assignment=a, annotator=u, data=f.answer(a.item, [[0], [1]])
                )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    per_item = Counter(Assignment.objects.filter(project=p).values_list("item_id", flat=True))
    assert set(per_item.values()) == {3}  # every item exactly at overlap, never above
    pairs = list(Assignment.objects.filter(project=p).values_list("item_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)) == 120
    assert set(Item.objects.filter(project=p).values_list("taken", "submitted")) == {(3, 3)}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_without_submits_hold_distinct_places() -> None:
    users = [f.user() for _ in range(20)]
    p = f.project(annotators=users, overlap=1, k=2, label_schema=[])
    f.items(p, 10)
    got: list[int | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def work(u) -> None:
        try:
            barrier.wait()
            a = services.assignment_claim(project=p, annotator=u)
            with lock:
                got.append(a.item_id if a else None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    held = [g for g in got if g is not None]
    assert len(held) == 10 and len(set(held)) == 10
    assert got.count(None) == 10


def test_an_annotator_whose_lock_expired_gets_the_same_item_back() -> None:
    a = f.user()
    p = f.project(annotators=[a], overlap=2, lock_ttl_seconds=60)
    (item,) = f.items(p, 1)
    held = services.assignment_claim(project=p, annotator=a)
    later = timezone.now() + timedelta(seconds=61)
    again = services.assignment_claim(project=p, annotator=a, now=later)
    assert again is not None and again.pk == held.pk and again.public_id == held.public_id
    assert again.state == Assignment.State.ACTIVE and again.expires_at > later
    assert again.display_order == held.display_order and isinstance(again.display_order, list)
    item.refresh_from_db()
    assert item.taken == 1 and Assignment.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_claim_is_one_round_trip_on_postgresql(django_assert_num_queries) -> None:
    from django.contrib.auth.models import Group

    direct, via_group, outsider = f.user(), f.user(), f.user()
    g = Group.objects.create(name="raters-sql")
    via_group.groups.add(g)
    p = f.project(annotators=[direct], overlap=2, gold_rate=0.5)
    p.annotator_groups.add(g)
    f.items(p, 3)
    f.items(p, 1, gold=True)
    for u in (direct, via_group):
        with django_assert_num_queries(1):  # sweep + role check + claim, one simple query
            first = services.assignment_claim(project=p, annotator=u)
        with django_assert_num_queries(1):
            again = services.assignment_claim(project=p, annotator=u)
        assert first is not None and again.pk == first.pk and first.project is p
        assert isinstance(first.display_order, list) and first.expires_at > timezone.now()
    with pytest.raises(NotFound):
        services.assignment_claim(project=p, annotator=outsider)
    p.annotators.remove(direct)  # a revoked annotator is refused at the next claim
    with pytest.raises(NotFound):
        services.assignment_claim(project=p, annotator=direct)
