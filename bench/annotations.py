"""Queue claims with 20 concurrent annotators on PostgreSQL.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/pa_bench_annot .venv/bin/python bench/annotations.py

Creates (or recreates) the database named in DATABASE_URL, loads a project with N items and
overlap 3, then 20 threads claim and release (submit) until the pool is empty. Prints claims/s,
the claim call's own latency (p50/p95, the release excluded) and double assignments for our claim
(one round trip on PostgreSQL: stale-lock sweep, role check and a CTE doing SELECT ... FOR UPDATE
SKIP LOCKED + conditional UPDATE + INSERT), run BENCH_RUNS times (default 3, median shown), and
from the same run two baselines: the same claim on one thread, and a naive claim (read the best
candidate, then insert, no row lock and no conditional update) that shows why the locks matter.
BENCH_NAIVE=0 leaves the naive baseline out (it takes over a minute on a busy machine).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TESTING", "1")  # insecure defaults without DEBUG overhead
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pa_bench_annot")
os.environ.setdefault("DB_POOL_MAX", "24")

THREADS = 20
ITEMS = int(os.environ.get("BENCH_ITEMS", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
OVERLAP = 3


def create_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"]}
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def setup_project(tag: str, users: list) -> object:
    from annotations.models import Item, ItemResponse, Project

    p = Project.objects.create(slug=f"bench-{tag}", name=tag, k=2, overlap=OVERLAP, blind=False)
    p.annotators.add(*users)
    items = Item.objects.bulk_create([Item(project=p, prompt=f"p{i}") for i in range(ITEMS)])
    ItemResponse.objects.bulk_create(
        [ItemResponse(item=it, index=j, text=f"r{j}") for it in items for j in range(2)]
    )
    return p


def naive_claim(project, user):  # type: ignore[no-untyped-def]
    """The obvious version: pick the best candidate by a COUNT, then insert. No locks."""
    from datetime import timedelta

    from django.db.models import Count, Q
    from django.utils import timezone

    from annotations.models import Assignment, Item

    mine = Assignment.objects.filter(annotator=user, project=project).values("item_id")
    item = (
        Item.objects.filter(project=project)
        .exclude(id__in=mine)
        .annotate(n=Count("assignments", filter=~Q(assignments__state="expired")))
        .filter(n__lt=project.overlap)
        .order_by("-n", "id")
        .first()
    )
    if item is None:
        return None
    return Assignment.objects.create(
        project=project, item=item, annotator=user, expires_at=timezone.now() + timedelta(hours=1)
    )


def release(a) -> None:  # type: ignore[no-untyped-def]
    """Finish the assignment cheaply (state change only) so the annotator can claim again."""
    from django.db import connection, transaction

    from annotations.models import Assignment

    # A stand-in for the submit, which is not what is measured: don't wait for its WAL flush.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED)


def run(project, users, claim, threads: int, latencies: list[float] | None = None):  # type: ignore[no-untyped-def]
    from django.db import connections

    from annotations.models import Assignment

    counts = [0] * len(users)
    lat: list[float] = [] if latencies is None else latencies
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(slot: int) -> None:
        try:
            barrier.wait()
            for ui in range(slot, len(users), threads):
                u = users[ui]
                while True:
                    t = time.perf_counter()
                    a = claim(project, u)
                    lat.append(time.perf_counter() - t)  # list.append is atomic under the GIL
                    if a is None:
                        break
                    counts[ui] += 1
                    release(a)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        print(f"  ({len(errors)} thread error(s), first: {errors[0]!r})")
    per_item = Counter(Assignment.objects.filter(project=project).values_list("item_id", flat=True))
    over = sum(1 for n in per_item.values() if n > project.overlap)
    pairs = list(Assignment.objects.filter(project=project).values_list("item_id", "annotator_id"))
    dupes = len(pairs) - len(set(pairs))
    return sum(counts), elapsed, over + dupes


def main() -> None:
    create_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotations import services

    call_command("migrate", verbosity=0)
    User = get_user_model()
    users = [User.objects.create_user(f"bench{i}") for i in range(THREADS)]

    def ours(project, user):  # type: ignore[no-untyped-def]
        return services.assignment_claim(project=project, annotator=user)

    print(f"queue claims, {THREADS} annotators, {ITEMS} items, overlap {OVERLAP}, PostgreSQL")
    rates, bad = [], 0
    for r in range(RUNS):
        p = setup_project(f"ours{r}", users)
        lat: list[float] = []
        n, s, bad_r = run(p, users, ours, THREADS, lat)
        bad += bad_r
        rates.append(n / s)
        lat.sort()
        print(
            f"  run {r + 1}: ours, {THREADS} threads: {n} claims in {s:.2f}s = {n / s:,.0f} claims/s, "
            f"claim latency p50 {lat[len(lat) // 2] * 1000:.1f} ms p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms, "
            f"double/over-assignments: {bad_r}"
        )
    rate = statistics.median(rates)
    print(f"  ours (one round trip), {THREADS} threads, median of {RUNS}: {rate:,.0f} claims/s")
    p1 = setup_project("single", users)
    n1, s1, bad1 = run(p1, users, ours, 1)
    print(
        f"  baseline: ours on 1 thread:                       {n1} claims in {s1:.2f}s = {n1 / s1:,.0f} claims/s, double/over-assignments: {bad1}"
    )
    if os.environ.get("BENCH_NAIVE", "1") != "0":
        pn = setup_project("naive", users)
        nn, sn, badn = run(pn, users, naive_claim, THREADS)
        print(
            f"  baseline: naive read-then-insert, {THREADS} threads:     {nn} claims in {sn:.2f}s = {nn / sn:,.0f} claims/s, items over overlap or duplicated: {badn}"
        )
    ok = rate >= 200 and bad == 0
    print("budget (>= 200 claims/s, zero double assignments):", "MET" if ok else "NOT MET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
