"""Preference export at 1M pairs in PostgreSQL, next to PostgreSQL's own COPY of the same rows.

    python bench/export.py [--pairs 1000000] [--pages 200]

Uses its own database (BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/
pa_bench_export); data (battles, one turn each, two responses, a vote) is generated once with
COPY and reused while it has the requested size. Each export runs in a fresh child process so its
peak RSS is the export's own. Prints, from the same run:
- PostgreSQL ``COPY (SELECT <the same join>) TO STDOUT`` of the same rows (the physical limit);
- our JSONL and Parquet release build (the code the Celery task runs, preferences.exports: the
  selector's turn rows as one typed binary COPY with the texts' stored scrub and JSON escape,
  decoded into Arrow blocks; each format built once as Arrow columns; JSON lines gathered from
  pieces, Parquet written from the columns; split files + sha256), rows/s and peak RSS;
- the API pairs page (bearer token, full Django stack, no network) p50/p95 at the first page,
  deep cursors and a model filter.
Budgets (issue 7): export >= 50k rows/s, peak memory <= 300 MB, pairs page p50 <= 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pa_bench_export"
)
os.environ.update(
    DATABASE_URL=DB_URL,
    DJANGO_SETTINGS_MODULE="config.settings",
    TESTING="1",
    LOG_JSON="0",
    LOG_LEVEL="WARNING",
    API_THROTTLE_USER="1000000/min",
    API_THROTTLE_TOKEN="1000000/min",
)
os.environ.pop("REDIS_URL", None)

WORDS = [
    "the",
    "model",
    "answer",
    "explains",
    "why",
    "a",
    "careful",
    "reader",
    "would",
    "prefer",
    "this",
    "response",
    "over",
    "the",
    "other",
    "one",
    "because",
    "it",
    "is",
    "shorter",
    "clearer",
    "and",
    "cites",
    "the",
    "relevant",
    "facts",
    "with",
    "code",
    "examples",
    "and",
    "a",
    "list",
]


def setup_django() -> None:
    import django

    django.setup()


def ensure_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _defaults(model: type, given: dict[str, object]) -> list[tuple[str, object]]:
    """Every concrete column: given values first, then each field's Python default (generated
    columns, such as the stored PII scrub, are written by PostgreSQL itself)."""
    cols: list[tuple[str, object]] = []
    for field in model._meta.concrete_fields:
        if field.generated:
            continue
        if field.column in given:
            cols.append((field.column, given[field.column]))
            continue
        if field.primary_key:
            continue
        default = field.get_default()
        if field.get_internal_type() == "JSONField":
            default = json.dumps(default)
        cols.append((field.column, default))
    return cols


def generate(n: int) -> None:
    import numpy as np
    from django.db import connection

    from arena.models import LLM, Battle, Provider, Response, Turn, Vote

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        tables = [m._meta.db_table for m in (Vote, Response, Turn, Battle)]
        cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    provider, _ = Provider.objects.get_or_create(name="bench", defaults={"kind": "demo"})
    LLM.objects.filter(provider=provider).delete()
    llms = LLM.objects.bulk_create(
        [
            LLM(slug=f"bench-{k:02d}", display_name=f"Bench {k}", provider=provider,
                provider_model_id=f"b{k}")
            for k in range(20)
        ]
    )  # fmt: skip
    pks = [m.pk for m in llms]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, n)
    b = (a + rng.integers(1, 20, n)) % 20
    winner = rng.choice(np.array(["a", "b", "a", "b", "tie", "both_bad"]), n)
    words = np.array(WORDS)
    vocab = rng.integers(0, len(WORDS), (4096, 60))
    texts = [" ".join(words[row]) for row in vocab]
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def copy(model: type, rows, given_cols: list[str]) -> None:  # type: ignore[no-untyped-def]
        template = _defaults(model, dict.fromkeys(given_cols, None))
        columns = [c for c, _ in template]
        fixed = {c: v for c, v in template if c not in given_cols}
        sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cur, cur.connection.cursor().copy(sql) as cp:
            for row in rows:
                values = dict(zip(given_cols, row, strict=True))
                cp.write_row([values[c] if c in values else fixed[c] for c in columns])

    connection.ensure_connection()
    cats = [json.dumps(["all"]), json.dumps(["all", "coding"]), json.dumps(["all", "long"])]
    copy(
        Battle,
        ((i + 1, uuid.UUID(int=i + 1), int(pks[a[i]]), int(pks[b[i]]), f"v{i % 50000:08x}",
          "voted", cats[i % 3], "en", base + timedelta(seconds=i), base) for i in range(n)),
        ["id", "public_id", "model_a_id", "model_b_id", "voter", "state", "categories",
         "language", "created", "updated"],
    )  # fmt: skip
    copy(
        Turn,
        ((i + 1, i + 1, 0, f"Question {i}: {texts[i % 4096][:120]}?", base) for i in range(n)),
        ["id", "battle_id", "index", "prompt", "created"],
    )  # fmt: skip
    copy(
        Response,
        ((2 * i + s + 1, uuid.UUID(int=2 * i + s + 1), i + 1, "ab"[s],
          texts[(7 * i + s) % 4096], "done", base) for i in range(n) for s in (0, 1)),
        ["id", "public_id", "turn_id", "side", "text", "state", "created"],
    )  # fmt: skip
    copy(
        Vote,
        ((i + 1, i + 1, str(winner[i]), f"v{i % 50000:08x}", 1, "[]",
          base + timedelta(seconds=i + 30)) for i in range(n)),
        ["id", "battle_id", "winner", "voter", "turns", "flags", "created"],
    )  # fmt: skip
    with connection.cursor() as cur:
        for model in (Battle, Turn, Response, Vote):
            t = model._meta.db_table
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))"
            )
            cur.execute(f"VACUUM ANALYZE {t}")
    print(f"generated {n:,} voted battles in {time.perf_counter() - t0:.1f} s")


def vote_count() -> int:
    from arena.models import Vote

    return Vote.objects.count()


def filters_for_bench():
    from preferences.selectors import PairFilters

    # Every vote is a pair: ties and both-bad included (arena_battles can say them).
    return PairFilters(sources=("arena",), include_ties=True, include_both_bad=True)


def pg_copy_baseline() -> tuple[int, float]:
    """PostgreSQL COPY of the same join our selector runs, to /dev/null-like sink."""
    from django.db import connection

    from preferences.selectors import arena_turn_rows

    sql, params = arena_turn_rows(filters_for_bench()).query.sql_with_params()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection (mogrify needs a client-side cursor)
    with psycopg.ClientCursor(raw) as c2:
        t = time.perf_counter()
        n = 0
        with c2.copy(c2.mogrify(f"COPY ({sql}) TO STDOUT", params)) as cp:
            for chunk in cp:
                n += bytes(chunk).count(b"\n")
        return n, time.perf_counter() - t


def python_fetch_baseline() -> tuple[int, float]:
    """The same rows through a psycopg named cursor into Python, doing nothing with them: the
    floor for any Python exporter (our export adds pairing, scrub, format, encode, write)."""
    from django.db import connection, transaction

    from preferences.selectors import arena_turn_rows

    sql, params = arena_turn_rows(filters_for_bench()).query.sql_with_params()
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name="bench_fetch") as cur:
            cur.itersize = 2000
            t = time.perf_counter()
            cur.execute(sql, params)
            n = sum(1 for _ in cur)
            return n, time.perf_counter() - t


def child_export(file_format: str, fmt: str) -> None:
    """Run in a fresh process: one release build exactly as the Celery task runs it."""
    setup_django()
    from django.conf import settings

    from preferences import services
    from preferences.exports import ExportOptions
    from preferences.models import DatasetRelease

    filters = filters_for_bench()
    with tempfile.TemporaryDirectory() as tmp:
        settings.MEDIA_ROOT = tmp
        DatasetRelease.objects.filter(name="bench").delete()
        release = DatasetRelease.objects.create(
            name="bench",
            version=f"{fmt}-{file_format}",
            format=fmt,
            file_format=file_format,
            filters=filters.to_json(),
            options=ExportOptions(test_fraction=0.1).to_json(),
            max_vote_id=vote_count(),
        )
        t = time.perf_counter()
        services.release_build(release_id=release.pk)
        seconds = time.perf_counter() - t
        release.refresh_from_db()
        assert release.status == "ready", release.error
        size = sum(f["bytes"] for f in release.files)
        release.delete()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": release.rows_done, "seconds": seconds, "peak_mb": peak_mb,
                      "bytes": size}))  # fmt: skip


def run_child(file_format: str, fmt: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", file_format, "--format", fmt],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def api_pages(pages: int) -> dict[str, list[float]]:
    import base64
    import random

    from django.contrib.auth.models import Permission, User
    from django.db import connection
    from django.test import Client

    from preferences import services
    from preferences.selectors import arena_turn_rows

    user, _ = User.objects.get_or_create(username="bench-researcher")
    user.user_permissions.add(Permission.objects.get(codename="access_datasets"))
    _, secret = services.token_create(user=user, name="bench", days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    n = vote_count()
    rng = random.Random(0)

    def cursor(pk: int) -> str:
        return base64.urlsafe_b64encode(f"0:{pk}:-1".encode()).decode().rstrip("=")

    cases = {
        "first page (50)": lambda: "/api/v1/pairs/?page_size=50",
        "deep cursor (50)": lambda: (
            f"/api/v1/pairs/?page_size=50&cursor={cursor(rng.randrange(n))}"
        ),
        "model filter (50)": lambda: (
            "/api/v1/pairs/?page_size=50&model=bench-07" + f"&cursor={cursor(rng.randrange(n))}"
        ),
        "ties, category (50)": lambda: (
            "/api/v1/pairs/?page_size=50&include_ties=true"
            + f"&category=coding&cursor={cursor(rng.randrange(n))}"
        ),
    }
    out: dict[str, list[float]] = {}
    # Baseline: the same page's SQL sent straight through psycopg (no Django, no DRF).
    page = arena_turn_rows(filters_for_bench(), after_vote_id=n // 2, vote_limit=51)
    sql, params = page.query.sql_with_params()
    times = []
    with connection.cursor() as cur:
        for _ in range(pages):
            t = time.perf_counter()
            cur.execute(sql, params)
            cur.fetchall()
            times.append((time.perf_counter() - t) * 1000)
    out["baseline: the page's SQL alone"] = times
    for name, url in cases.items():
        for _ in range(5):
            client.get(url())
        times = []
        for _ in range(pages):
            u = url()
            t = time.perf_counter()
            r = client.get(u)
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.content[:300]
        out[name] = times
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--child")
    parser.add_argument("--format", default="arena_battles")
    parser.add_argument("--no-exports", action="store_true", help="baselines and API only")
    args = parser.parse_args()
    if args.child:
        child_export(args.child, args.format)
        return
    ensure_database()
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if vote_count() != args.pairs:
        generate(args.pairs)
    n = vote_count()
    print(f"\n{n:,} pairs in {DB_URL.rsplit('/', 1)[1]}\n")
    rows, seconds = pg_copy_baseline()
    print(f"{'PostgreSQL COPY (same join) TO STDOUT':44s} {rows:>9,} rows {seconds:6.2f} s "
          f"{rows / seconds:>10,.0f} rows/s   (physical limit)")  # fmt: skip
    rows, seconds = python_fetch_baseline()
    print(f"{'psycopg named cursor -> Python, no work':44s} {rows:>9,} rows {seconds:6.2f} s "
          f"{rows / seconds:>10,.0f} rows/s   (floor for a Python exporter)")  # fmt: skip
    budget_ok = True
    exports = (
        []
        if args.no_exports
        else [
            ("jsonl", "arena_battles"),
            ("jsonl", "trl_standard"),
            ("parquet", "arena_battles"),
            ("jsonl.gz", "trl_conversational"),
        ]
    )
    for file_format, fmt in exports:
        r = run_child(file_format, fmt)
        rate = r["rows"] / r["seconds"]
        ok = rate >= 50_000 and r["peak_mb"] <= 300
        budget_ok &= ok or file_format == "jsonl.gz"
        print(f"{'export ' + fmt + ' ' + file_format:44s} {r['rows']:>9,} rows {r['seconds']:6.2f} s "
              f"{rate:>10,.0f} rows/s   peak RSS {r['peak_mb']:5.0f} MB  "
              f"{r['bytes'] / 1e6:7.1f} MB out  {'ok' if ok else 'OVER BUDGET'}")  # fmt: skip
    print()
    for name, times in api_pages(args.pages).items():
        times.sort()
        p50 = statistics.median(times)
        p95 = times[int(0.95 * len(times)) - 1]
        if not name.startswith("baseline"):
            budget_ok &= p50 <= 30
        print(f"API pairs page, {name:32s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
              f"({len(times)} requests)  {'ok' if p50 <= 30 else 'OVER BUDGET'}")  # fmt: skip
    print("\nbudgets (export >= 50k rows/s, <= 300 MB; pairs page p50 <= 30 ms):",
          "met" if budget_ok else "NOT met")  # fmt: skip


if __name__ == "__main__":
    main()
