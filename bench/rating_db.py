"""Leaderboard from PostgreSQL: full recompute at 1M votes, and vote-to-leaderboard latency.

    python bench/rating_db.py [--votes 1000000] [--models 100] [--samples 5]

Uses its own database (BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/
pa_rating_bench) and Redis DB 3 (BENCH_REDIS_URL). Data is generated once with COPY and reused
while it has the requested size. Prints our figures next to baselines from the same run:
- full recompute (read votes, anomaly test, count rebuild, plain + style fits for every
  category, snapshots, sampling weights; style features come from the votes' own per-side
  totals, so no turns or responses are generated) vs a naive fit that reads every vote through the ORM
  for the overall board only;
- a new vote visible in the BT leaderboard, through a real Celery worker with beat (the periodic
  refresh reads only the counts table), vs the naive per-vote refit time.
Budgets (issue 5): full recompute <= 10 s, new vote visible <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pa_rating_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
os.environ.update(
    DATABASE_URL=DB_URL,
    REDIS_URL=REDIS_URL,
    CACHE_PREFIX="pa-rating-bench",
    CHANNELS_PREFIX="pa-rating-bench",
    DJANGO_SETTINGS_MODULE="config.settings",
    TESTING="1",
    LOG_JSON="0",
    LOG_LEVEL="WARNING",
)

CATEGORIES = [
    ["all", "lang:en"],
    ["all", "lang:en", "coding"],
    ["all", "lang:zh"],
    ["all", "lang:en", "long_prompt"],
    ["all", "lang:de", "multi_turn"],
]


def ensure_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def generate(n_votes: int, n_models: int) -> None:
    import numpy as np
    from django.db import connection

    from arena.models import LLM, Battle, Provider, Response, Turn, Vote, VoteCount
    from rating.models import LeaderboardSnapshot

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        tables = [
            m._meta.db_table for m in (LeaderboardSnapshot, VoteCount, Vote, Response, Turn, Battle)
        ]
        cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    provider, _ = Provider.objects.get_or_create(name="bench", defaults={"kind": "demo"})
    LLM.objects.filter(provider=provider).delete()
    llms = LLM.objects.bulk_create(
        [
            LLM(slug=f"bench-{k:03d}", display_name=f"Bench {k:03d}", provider=provider,
                provider_model_id=f"b{k}", organisation="Bench", license="MIT")
            for k in range(n_models)
        ]
    )  # fmt: skip
    pks = np.array([m.pk for m in llms])
    rng = np.random.default_rng(0)
    strength = rng.normal(0, 1, n_models)
    a = rng.integers(0, n_models, n_votes)
    b = (a + rng.integers(1, n_models, n_votes)) % n_models
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(n_votes)
    winner = np.where(u < 0.15, "tie", np.where(rng.random(n_votes) < p, "a", "b"))
    cats = rng.integers(0, len(CATEGORIES), n_votes)
    cat_json = [json.dumps(c) for c in CATEGORIES]
    voters = rng.integers(0, 50_000, n_votes)
    length = rng.integers(50, 800, (n_votes, 2))
    md = rng.integers(0, 6, (n_votes, 2, 3))
    now = datetime.now(tz=UTC).isoformat()

    def copy(model: type, columns: list[str], rows) -> None:  # type: ignore[no-untyped-def]
        sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cur, cur.connection.cursor().copy(sql) as cp:
            for row in rows:
                cp.write_row(row)

    connection.ensure_connection()
    copy(
        Battle,
        ["id", "public_id", "mode", "model_a_id", "model_b_id", "voter", "ip_hash", "state",
         "categories", "language", "created", "updated"],
        ((i + 1, uuid.uuid4(), "anonymous", int(pks[a[i]]), int(pks[b[i]]), f"v{voters[i]}", "",
          "voted", cat_json[cats[i]], "en", now, now) for i in range(n_votes)),
    )  # fmt: skip
    # Style features live on the vote (per-side conversation totals, as vote_cast stores them):
    # the full recompute reads one row per vote, so no turns or responses are generated.
    copy(
        Vote,
        ["id", "battle_id", "winner", "voter", "turns", "flags", "created",
         "a_length", "a_header_count", "a_list_count", "a_bold_count",
         "b_length", "b_header_count", "b_list_count", "b_bold_count"],
        ((i + 1, i + 1, str(winner[i]), f"v{voters[i]}", 1, "[]", now,
          int(length[i, 0]), int(md[i, 0, 0]), int(md[i, 0, 1]), int(md[i, 0, 2]),
          int(length[i, 1]), int(md[i, 1, 0]), int(md[i, 1, 1]), int(md[i, 1, 2]))
         for i in range(n_votes)),
    )  # fmt: skip
    with connection.cursor() as cur:
        for model in (Battle, Vote):
            t = model._meta.db_table
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))"
            )
            cur.execute(f"ANALYZE {t}")
    from rating import selectors, services

    services.counts_rebuild_from(selectors.arena_vote_arrays())
    print(f"generated {n_votes:,} votes over {n_models} models in {time.perf_counter() - t0:.1f} s")


def naive_fit() -> float:
    """Baseline: every vote through the ORM, then a per-vote fit of the overall board."""
    import numpy as np

    from arena.models import Vote
    from rating.engine import leaderboard

    t = time.perf_counter()
    rows = list(
        Vote.objects.filter(battle__mode="anonymous", flags=[]).values_list(
            "battle__model_a_id", "battle__model_b_id", "winner"
        )
    )
    a, b, w = (np.array(c) for c in zip(*rows, strict=True))
    pks, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    leaderboard([str(p) for p in pks], inv[: a.size], inv[a.size :], w)
    return time.perf_counter() - t


def freshness(samples: int) -> list[float]:
    """Cast votes (vote + counts in one transaction) and wait for them in a snapshot."""
    from django.db import transaction

    from arena.counts import counts_add_vote
    from arena.models import LLM, Battle, Vote
    from rating import selectors
    from tests import harness

    llm_a, llm_b = LLM.objects.filter(provider__name="bench").order_by("pk")[:2]
    latencies = []
    with harness.celery_worker(DB_URL, REDIS_URL=REDIS_URL, CACHE_PREFIX="pa-rating-bench",
                               CHANNELS_PREFIX="pa-rating-bench", LOG_LEVEL="WARNING"):  # fmt: skip
        harness.wait_until(
            lambda: selectors.snapshot_versions() == selectors.counts_versions(),
            timeout=60, what="the worker's first refresh",
        )  # fmt: skip
        for _ in range(samples):
            before = selectors.snapshot_latest().votes_counted
            with transaction.atomic():
                battle = Battle.objects.create(
                    model_a=llm_a, model_b=llm_b, voter="bench", categories=["all", "lang:en"]
                )
                vote = Vote.objects.create(battle=battle, winner="a", voter="bench", turns=1)
                counts_add_vote(vote)
            t = time.perf_counter()
            harness.wait_until(
                lambda before=before: selectors.snapshot_latest().votes_counted > before,
                timeout=30, what="the vote in the leaderboard", interval=0.02,
            )  # fmt: skip
            latencies.append(time.perf_counter() - t)
            time.sleep(0.7)  # land at different phases of the 2 s refresh period
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    from arena.models import Vote
    from rating.services import leaderboard_recompute_full

    call_command("migrate", verbosity=0)
    # Regenerate when too small or made before votes carried their style features.
    if Vote.objects.count() < args.votes or not Vote.objects.filter(a_length__gt=0).exists():
        generate(args.votes, args.models)

    report = leaderboard_recompute_full()
    print(
        f"full recompute, {report['votes']:,} votes, {len(report['categories'])} categories x "
        f"(plain + style): {report['seconds']:.2f} s  (budget 10 s)  steps {report['timings']}"
    )
    print(f"baseline: naive ORM read of every vote + one per-vote fit (overall only): "
          f"{naive_fit():.2f} s")  # fmt: skip
    lat = freshness(args.samples)
    print(
        f"new vote visible in the BT leaderboard (real Celery worker + beat, refresh every 2 s): "
        f"median {statistics.median(lat):.2f} s, max {max(lat):.2f} s over {len(lat)} votes "
        "(budget 5 s)"
    )
    print("baseline: refitting from every vote on each new vote costs the naive fit above, "
          "per vote")  # fmt: skip


if __name__ == "__main__":
    main()
