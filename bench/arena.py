"""Arena bench against the production stack: votes, battle starts and live streaming.

    python bench/arena.py [--quick] [--only votes|starts|stream]

The stack is the one ``docker/compose.yml`` runs, on 127.0.0.1: PostgreSQL (a fresh database,
BENCH_DATABASE_URL, default ``postgresql://postgres@127.0.0.1:5432/pa_bench_arena``, dropped and
migrated at start), Redis DB 7 (prefixes ``pa-bench``), gunicorn (5 sync workers, as docker/ runs it) for HTTP, uvicorn
(2 workers) for ``/ws/``, a Celery worker with a threads pool (``-c 220``) and the fake provider
(``tests/fakes/fake_llm.py``, through ``bench/_stack.py``) in its own process streaming at a
fixed rate. Rate limits are switched off through the ``ARENA_*`` settings. Every process is
spawned by this script in its own process group and stopped at the end (logs: var/bench-logs/).

1. votes: battles with both responses done are bulk-inserted, each owned by its own session
   (rows in ``django_session`` plus the cached_db cache entries). An async httpx load generator
   with a fixed number of connections POSTs ``/arena/b/<uuid>/vote/`` once per battle (session
   cookie, CSRF cookie + header) for 30 s. Reported: rate (overall and the slowest 1-s window),
   p50/p99 latency, accepted (302) and the Vote rows stored. Baseline from the same run: the same
   load generator against ``/bench/baseline/`` under the same gunicorn and middleware, a minimal
   view that inserts one row in a transaction.
2. battle starts: sessions with ``arena_consent`` pre-created; POST ``/arena/`` for 20 s. The
   Celery worker is not running in this phase, so every enqueued task is still in the broker:
   the bench decodes the Redis queues and checks that they hold exactly the two (response id,
   attempt 1) tasks of every started battle, and that both Response rows exist.
3. streaming: 100 battles started through POST ``/arena/`` within about a second, 200 streams
   at 30 tokens/s (150 tokens, 0.5 s first-token delay at the provider), each battle watched by
   a WebSocket client that connects right after its POST with the battle's session cookie.
   Extra time to first token, per stream: the CLOCK_MONOTONIC time the client received the
   first frame carrying text for that response (delta or snapshot) minus the CLOCK_MONOTONIC
   time the fake provider wrote its first token chunk to the socket (recorded inside the fake
   server process, matched to the response by prompt and model id). CLOCK_MONOTONIC is shared
   by all processes of the machine, so no clock offset is involved. Baseline: the provider's own
   first-token time (request arrival to first token write). Exactly-once: the client keeps
   (epoch, text) per response exactly as the page does (append the part of a delta beyond
   what it shows, drop what it already shows, resync when a delta starts past its end) and the
   reassembled text must equal the saved ``Response.text``; duplicates dropped and resyncs are
   counted, and the final rendered pane (``state-done``) must arrive for every response.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import string
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pa_bench_arena")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
ENV = {
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "CACHE_PREFIX": "pa-bench",
    "CHANNELS_PREFIX": "pa-bench",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "SECRET_KEY": "bench-arena-secret-key-not-for-production-0123456789abcdef",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DEBUG": "0",
    "TESTING": "1",  # plain static storage (no collectstatic manifest needed); nothing else
    "SECURE_COOKIES": "0",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_JSON": "0",
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    "DB_POOL_MAX": "8",
    "ARENA_BATTLES_PER_MINUTE": "0",
    "ARENA_BATTLES_PER_MINUTE_PER_IP": "0",
    "ARENA_VOTES_PER_MINUTE": "0",
    "ARENA_VOTES_PER_MINUTE_PER_IP": "0",
    "PYTHONPATH": str(ROOT),
}
os.environ.update(ENV)

CSRF = "benchcsrftoken0123456789abcdefgh"  # 32 chars: a valid unmasked CSRF secret
N_MODELS = 12
# Requests sent before each measurement and left out of it: a fresh gunicorn worker imports the
# task modules (rating -> scipy) on its first enqueue, which takes seconds; production is warm.
WARMUP = 60


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# --- setup ----------------------------------------------------------------------------------


def fresh_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    import subprocess

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ},
        check=True,
    )


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def setup_django() -> None:
    import django

    django.setup()
    from django.db import connection

    from bench._stack import BASELINE_TABLE

    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id bigserial PRIMARY KEY, "
            "battle text NOT NULL, winner text NOT NULL, created timestamptz DEFAULT now())"
        )


def create_models(base_url: str) -> list[Any]:
    from arena.models import LLM, Provider

    provider, _ = Provider.objects.update_or_create(
        name="fake",
        defaults={
            "kind": "openai",
            "base_url": base_url + "/v1",
            "max_concurrency": 400,
            "first_token_timeout": 30,
            "total_timeout": 180,
        },
    )
    LLM.objects.all().delete()
    return LLM.objects.bulk_create(
        [
            LLM(slug=f"bench-m{k:02d}", display_name=f"Bench M{k:02d}", organisation="Bench Org",
                provider=provider, provider_model_id=f"fake-m{k:02d}")
            for k in range(N_MODELS)
        ]
    )  # fmt: skip


def create_sessions(n: int, data: dict[str, Any]) -> list[str]:
    """``n`` sessions in django_session and in the cache (cached_db), as real visitors have."""
    from datetime import timedelta

    from django.conf import settings
    from django.contrib.sessions.backends.cached_db import KEY_PREFIX, SessionStore
    from django.contrib.sessions.models import Session
    from django.core.cache import caches
    from django.utils import timezone

    chars = string.ascii_lowercase + string.digits
    rng = random.SystemRandom()
    keys = ["".join(rng.choices(chars, k=32)) for _ in range(n)]
    encoded = SessionStore().encode(data)
    expire = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=encoded, expire_date=expire) for k in keys],
        batch_size=2000,
    )
    cache = caches[settings.SESSION_CACHE_ALIAS]
    for i in range(0, n, 2000):
        cache.set_many(
            {KEY_PREFIX + k: data for k in keys[i : i + 2000]}, settings.SESSION_COOKIE_AGE
        )
    return keys


def create_done_battles(keys: list[str], models: list[Any]) -> list[str]:
    """One battle per session, one turn, both responses done: ready to be voted on."""
    from django.db import transaction

    from arena.models import Battle, Response, Turn
    from arena.services import voter_key

    rng = random.Random(1)
    text = "A finished answer.\n\n- one\n- two\n\n**done**"
    ids: list[str] = []
    with transaction.atomic():
        for i in range(0, len(keys), 2000):
            chunk = keys[i : i + 2000]
            battles = []
            for k in chunk:
                a, b = rng.sample(models, 2)
                battles.append(
                    Battle(model_a=a, model_b=b, voter=voter_key(k), categories=["all"],
                           language="en")
                )  # fmt: skip
            battles = Battle.objects.bulk_create(battles)
            turns = Turn.objects.bulk_create(
                [Turn(battle=b, index=0, prompt="bench prompt", language="en", prompt_chars=12)
                 for b in battles]
            )  # fmt: skip
            Response.objects.bulk_create(
                [
                    Response(turn=t, side=s, text=text, state=Response.State.DONE, length=len(text),
                             list_count=2, bold_count=1, completion_tokens=10)
                    for t in turns
                    for s in ("a", "b")
                ]
            )  # fmt: skip
            ids += [str(b.public_id) for b in battles]
    analyze()
    return ids


def analyze() -> None:
    """Planner statistics for the bulk-loaded rows, as autovacuum keeps them in production (without
    them PostgreSQL plans the vote's response lookup as a sequential scan)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


# --- HTTP load generator ---------------------------------------------------------------------


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    wall: float = 0.0

    def ok(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def min_window_rate(self, start: float) -> float:
        """Requests completed in the slowest whole 1-s window of the run."""
        buckets: dict[int, int] = {}
        for t in self.finished_at:
            buckets[int(t - start)] = buckets.get(int(t - start), 0) + 1
        whole = [buckets.get(s, 0) for s in range(int(self.wall))]
        return float(min(whole)) if whole else float("nan")


async def load(
    base: str,
    jobs: list[tuple[str, dict[str, str], str]],  # (path, form, session key)
    *,
    concurrency: int,
    duration: float,
    expect: int,
) -> tuple[LoadResult, float]:
    """POST the jobs in order from ``concurrency`` workers until the jobs or the time run out."""
    import httpx

    res = LoadResult()
    it = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.monotonic()
        stop_at = start + duration

        async def worker() -> None:
            for path, form, key in it:
                if time.monotonic() >= stop_at:
                    return
                t0 = time.monotonic()
                try:
                    r = await client.post(
                        path,
                        data=form,
                        headers={
                            "Cookie": f"sessionid={key}; csrftoken={CSRF}",
                            "X-CSRFToken": CSRF,
                        },
                    )
                except httpx.HTTPError as exc:
                    res.errors.append(repr(exc))
                    continue
                t1 = time.monotonic()
                res.latencies.append(t1 - t0)
                res.finished_at.append(t1)
                res.statuses[r.status_code] = res.statuses.get(r.status_code, 0) + 1
                if r.status_code == expect:
                    res.locations.append(r.headers.get("location", ""))
                elif len(res.errors) < 5:
                    res.errors.append(f"{r.status_code}: {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.wall = time.monotonic() - start
    return res, start


def report_load(label: str, res: LoadResult, start: float, ok_status: int) -> None:
    n = len(res.latencies)
    print(
        f"  {label}: {n} requests in {res.wall:.1f} s = {n / res.wall:.0f}/s "
        f"(slowest 1-s window {res.min_window_rate(start):.0f}/s); latency p50 "
        f"{pct(res.latencies, 50) * 1000:.1f} ms, p99 {pct(res.latencies, 99) * 1000:.1f} ms; "
        f"status {dict(sorted(res.statuses.items()))}"
    )
    for e in res.errors[:3]:
        print(f"    error: {e}")


# --- 1. votes -------------------------------------------------------------------------------


@dataclass
class WrkResult:
    sent: list[int]  # indices of the jobs sent (each exactly once)
    statuses: dict[str, int]
    fillers: int
    wall: float
    p50: float
    p99: float
    max: float
    socket_errors: dict[str, int]

    @property
    def answered(self) -> int:
        return sum(self.statuses.values()) - self.fillers


def wrk_load(
    base: str, jobs: list[tuple[str, dict[str, str], str]], *, connections: int, seconds: int,
    threads: int = 1,
) -> WrkResult:  # fmt: skip
    """POST the jobs with ``wrk`` (bench/wrk_jobs.lua) for ``seconds``; every sent job answered."""
    import subprocess
    import tempfile
    from urllib.parse import urlencode

    with tempfile.TemporaryDirectory() as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.tsv", Path(tmp) / "out.json"
        jobs_path.write_text(
            "".join(f"{path}\t{key}\t{urlencode(form)}\n" for path, form, key in jobs)
        )
        env = {
            **os.environ, "WRK_JOBS": str(jobs_path), "WRK_THREADS": str(threads),
            "WRK_SECONDS": str(seconds), "WRK_OUT": str(out_path),
        }  # fmt: skip
        proc = subprocess.Popen(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds + 120}s",
             "--timeout", "30s", "-s", str(ROOT / "bench" / "wrk_jobs.lua"), base],
            env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # Each thread writes out.json.<k> once everything it sent is answered; then SIGINT makes
        # wrk stop and run done() (its duration ends here, within one poll).
        drained = [Path(f"{out_path}.{k + 1}") for k in range(threads)]
        while proc.poll() is None and not all(p.exists() for p in drained):
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=60) != 0:
            raise RuntimeError(f"wrk failed with {proc.returncode}")
        out = json.loads(out_path.read_text())
    sent: list[int] = []
    statuses: dict[str, int] = {}
    for k, t in enumerate(out["threads"]):
        sent += list(range(k, k + threads * t["sent"], threads))
        for status, count in (t["statuses"] or {}).items():
            statuses[status] = statuses.get(status, 0) + count
    return WrkResult(
        sent=sent, statuses=statuses, fillers=sum(t["fillers"] for t in out["threads"]),
        wall=out["duration_us"] / 1e6, p50=out["p50_us"] / 1e3, p99=out["p99_us"] / 1e3,
        max=out["max_us"] / 1e3, socket_errors=out["errors"],
    )  # fmt: skip


def report_wrk(label: str, res: WrkResult) -> None:
    errors = {k: v for k, v in res.socket_errors.items() if v}
    print(
        f"  {label}: {res.answered} requests in {res.wall:.1f} s = {res.answered / res.wall:.0f}/s;"
        f" latency p50 {res.p50:.1f} ms, p99 {res.p99:.1f} ms, max {res.max:.0f} ms; status "
        f"{dict(sorted(res.statuses.items()))}" + (f"; socket errors {errors}" if errors else "")
    )


def bench_votes(http: str, models: list[Any], quick: bool, concurrency: int) -> dict[str, Any]:
    """Votes through ``wrk`` (C, one thread): the load generator must not eat the cores the
    server needs. Every job is a distinct battle owned by its own session."""
    import shutil

    from arena.models import Vote

    if shutil.which("wrk") is None:
        raise SystemExit("bench votes needs wrk (apt-get install wrk)")
    seconds = 8 if quick else 30
    n = 4000 if quick else 16000
    t0 = time.monotonic()
    keys = create_sessions(n, {})
    ids = create_done_battles(keys, models)
    print(
        f"votes: {n} battles (both responses done), one session each, created in "
        f"{time.monotonic() - t0:.1f} s; wrk, {concurrency} connections, {seconds} s"
    )
    winners = ["a", "b", "tie", "both_bad"]
    jobs = [
        (f"/arena/b/{bid}/vote/", {"winner": winners[i % 4]}, key)
        for i, (bid, key) in enumerate(zip(ids, keys, strict=True))
    ]
    warm, jobs = jobs[:WARMUP], jobs[WARMUP:]
    asyncio.run(load(http, warm, concurrency=concurrency, duration=120, expect=302))
    res = wrk_load(http, jobs, connections=concurrency, seconds=seconds)
    report_wrk("ours (POST /arena/b/<id>/vote/)", res)
    accepted = res.statuses.get("302", 0)
    sent_ids = [jobs[i][0].split("/")[3] for i in res.sent]
    stored = Vote.objects.filter(battle__public_id__in=sent_ids).count()
    outside = Vote.objects.count() - WARMUP - stored
    print(
        f"  sent {len(res.sent)} (each answered), accepted {accepted}, stored {stored}, votes on "
        f"battles never sent {outside} -> "
        f"{'OK' if accepted == stored == len(res.sent) and outside == 0 else 'MISMATCH'}"
    )
    if len(res.sent) >= len(jobs):
        print("  note: ran out of battles before the time was up (raise n)")
    base_jobs = [
        ("/bench/baseline/", {"battle": bid, "winner": "a"}, key)
        for bid, key in zip(ids, keys, strict=True)
    ]
    bres = wrk_load(http, base_jobs, connections=concurrency, seconds=8 if quick else 15)
    report_wrk("baseline (minimal view, INSERT one row)", bres)
    rate = res.answered / res.wall
    ok = rate >= 200 and res.p99 < 150 and accepted == stored == len(res.sent) and outside == 0
    print(f"  budget >= 200/s, p99 < 150 ms, stored == accepted: {'PASS' if ok else 'MISS'}")
    return {"rate": rate, "p99": res.p99, "ok": ok}


# --- 2. battle starts -------------------------------------------------------------------------


def queued_tasks() -> list[tuple[int, int]]:
    """(response pk, attempt) of every generate_response message waiting in the Redis queues."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    out: list[tuple[int, int]] = []
    for queue in ("default", "stream"):
        for raw in r.lrange(queue, 0, -1):
            msg = json.loads(raw)
            if msg.get("headers", {}).get("task") != "arena.generate_response":
                continue
            args = json.loads(base64.b64decode(msg["body"]))[0]
            out.append((int(args[0]), int(args[1])))
    return out


def bench_starts(http: str, quick: bool, concurrency: int) -> dict[str, Any]:
    from arena.models import Battle, Response

    duration = 6.0 if quick else 20.0
    n = 1500 if quick else 4000
    keys = create_sessions(n, {"arena_consent": True})
    warm = [("/arena/", {"prompt": "warm-up"}, k) for k in keys[:WARMUP]]
    keys = keys[WARMUP:]
    asyncio.run(load(http, warm, concurrency=concurrency, duration=120, expect=302))
    purge_queues()
    before = set(Battle.objects.values_list("pk", flat=True))
    print(
        f"battle starts: {n} sessions with consent; {concurrency} connections, {duration:.0f} s "
        "(no Celery worker running: the tasks stay in the broker to be counted)"
    )
    jobs = [("/arena/", {"prompt": f"Explain topic {i} briefly."}, k) for i, k in enumerate(keys)]
    res, start = asyncio.run(
        load(http, jobs, concurrency=concurrency, duration=duration, expect=302)
    )
    report_load("ours (POST /arena/)", res, start, 302)
    started = res.ok(302)
    new = Battle.objects.exclude(pk__in=before)
    n_battles = new.count()
    responses = list(
        Response.objects.filter(turn__battle__in=new).values_list("pk", "state", "attempt")
    )
    tasks = queued_tasks()
    expected = {(pk, attempt) for pk, _, attempt in responses}
    redirects_ok = sum(1 for loc in res.locations if loc.startswith("/arena/b/"))
    print(
        f"  started {started} (302 to /arena/b/<uuid>/: {redirects_ok}), battles {n_battles}, "
        f"responses {len(responses)} (pending: "
        f"{sum(1 for _, s, _ in responses if s == 'pending')}), generation tasks in the broker "
        f"{len(tasks)} (matching the responses one to one: {sorted(tasks) == sorted(expected)})"
    )
    rate = len(res.latencies) / res.wall
    ok = (
        rate >= 50
        and started == n_battles == len(res.latencies)
        and len(responses) == 2 * n_battles
        and sorted(tasks) == sorted(expected)
    )
    print(f"  budget >= 50 battles/s, two responses enqueued each: {'PASS' if ok else 'MISS'}")
    return {"rate": rate, "ok": ok}


def purge_queues() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).delete("default", "stream")


# --- 3. streaming -------------------------------------------------------------------------------


@dataclass
class Pane:
    epoch: int = -1
    text: str = ""
    first_text_at: float | None = None
    first_via: str = ""
    duplicates: int = 0  # frames (or parts) already shown, dropped
    resyncs: int = 0  # deltas that started past the end (a lost frame)
    frames: int = 0
    last_frame_at: float = 0.0
    final_html: bool = False

    def apply(self, f: dict[str, Any], now: float) -> bool:
        """Show one frame the way static/js/arena.js does; True when the page must ask for a
        resync (a delta that starts past what it has shown)."""
        self.frames += 1
        self.last_frame_at = now
        if f["epoch"] < self.epoch:
            self.duplicates += 1
            return False
        if f["epoch"] > self.epoch:
            self.epoch, self.text = f["epoch"], ""
        if f["k"] == "reset":
            self.text = ""
            return False
        text, offset = f.get("text", ""), f.get("offset", 0)
        if f["k"] == "snapshot":
            if len(text) >= len(self.text):
                self.text = text
            else:
                self.duplicates += 1
        elif offset > len(self.text):
            self.resyncs += 1
            return True
        elif offset + len(text) <= len(self.text):
            self.duplicates += 1
            return False
        else:
            if offset < len(self.text):
                self.duplicates += 1
            self.text += text[len(self.text) - offset :]
        if text and self.first_text_at is None:
            self.first_text_at, self.first_via = now, f["k"]
        return False


@dataclass
class Watch:
    battle: str = ""
    post_sent: float = 0.0
    post_done: float = 0.0
    ws_open: float = 0.0
    panes: dict[str, Pane] = field(default_factory=dict)
    error: str = ""

    def saw_final_panes(self, html: str) -> bool:
        """Mark the panes an HTML fragment shows finished; True once both are."""
        for rid, pane in self.panes.items():
            at = html.find(f'id="pane-{rid}"')
            if at >= 0 and "state-done" in html[max(0, at - 200) : at]:
                pane.final_html = True
        return len(self.panes) == 2 and all(p.final_html for p in self.panes.values())


async def watch_battle(
    http_client: Any, ws_base: str, origin: str, key: str, prompt: str, deadline: float
) -> Watch:
    import websockets

    w = Watch()
    w.post_sent = time.monotonic()
    r = await http_client.post(
        "/arena/",
        data={"prompt": prompt},
        headers={"Cookie": f"sessionid={key}; csrftoken={CSRF}", "X-CSRFToken": CSRF},
    )
    w.post_done = time.monotonic()
    loc = r.headers.get("location", "")
    if r.status_code != 302 or not loc.startswith("/arena/b/"):
        w.error = f"start: {r.status_code} {r.text[:200]}"
        return w
    w.battle = loc.rstrip("/").rsplit("/", 1)[1]
    try:
        async with websockets.connect(
            f"{ws_base}/ws/arena/{w.battle}/",
            additional_headers={"Cookie": f"sessionid={key}", "Origin": origin},
            max_size=None,
            open_timeout=30,
        ) as ws:
            w.ws_open = time.monotonic()
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                except TimeoutError:
                    break
                now = time.monotonic()
                if isinstance(raw, bytes):
                    raw = raw.decode()
                if raw.startswith("{"):
                    f = json.loads(raw)
                    if w.panes.setdefault(f["r"], Pane()).apply(f, now):
                        await ws.send(json.dumps({"resync": True}))
                elif w.saw_final_panes(raw):
                    break
    except Exception as exc:  # noqa: BLE001 - reported per battle
        w.error = f"ws: {exc!r}"
    return w


async def tap_channel_layer(published: dict[str, float], stop: asyncio.Event) -> None:
    """Listen on the channel layer's Redis pub/sub channels next to the pages and note when the
    first frame carrying text for each response was published (for the latency breakdown)."""
    import msgpack
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{ENV['CHANNELS_PREFIX']}__group__battle.*")
    try:
        while not stop.is_set():
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is None:
                continue
            now = time.monotonic()
            data = msg["data"]
            for skip in (0, 12):  # channels-redis may put a random prefix before the msgpack
                try:
                    event = msgpack.unpackb(data[skip:], raw=False)
                    break
                except Exception:  # noqa: BLE001, S112 - try the next framing
                    continue
            else:
                continue
            frame = event.get("frame") if isinstance(event, dict) else None
            if frame and frame.get("text") and frame["r"] not in published:
                published[frame["r"]] = now
    finally:
        await pubsub.aclose()
        await client.aclose()


async def run_stream_clients(
    http: str, ws_base: str, keys: list[str], prompts: list[str], spread: float, timeout: float,
    published: dict[str, float] | None = None,
) -> list[Watch]:  # fmt: skip
    import httpx

    origin = http
    deadline = time.monotonic() + timeout
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    stop = asyncio.Event()
    tap = asyncio.create_task(tap_channel_layer(published, stop)) if published is not None else None
    async with httpx.AsyncClient(base_url=http, limits=limits, timeout=30) as client:

        async def one(i: int) -> Watch:
            await asyncio.sleep(spread * i / len(keys))
            return await watch_battle(client, ws_base, origin, keys[i], prompts[i], deadline)

        try:
            return await asyncio.gather(*(one(i) for i in range(len(keys))))
        finally:
            stop.set()
            if tap is not None:
                await tap


def bench_stream(  # noqa: C901  (a benchmark script read top to bottom: warm up, burst, collect, report)
    stack: Any, http: str, ws_base: str, fake_url: str, quick: bool, tps: float, delay: float,
    words: int, spread: float, dump_path: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    import httpx

    from arena.models import Response

    n = 20 if quick else 100
    keys = create_sessions(n, {"arena_consent": True})
    run_id = uuid.uuid4().hex[:6]
    prompts = [f"Stream test {run_id} number {i:04d}" for i in range(n)]
    print(
        f"streaming: {n} battles ({2 * n} streams) started within {spread:.0f} s, {words} tokens "
        f"at {tps:.0f} tokens/s, provider first-token delay {delay} s, "
        f"flush every {os.environ.get('ARENA_STREAM_FLUSH_SECONDS', '0.075')} s"
    )
    timeout = delay + words / tps + 60
    # Warm-up (left out): a few battles through every process (worker imports, first WS, pools).
    wkeys = create_sessions(6, {"arena_consent": True})
    asyncio.run(
        run_stream_clients(http, ws_base, wkeys, [f"warm-up {i}" for i in range(6)], 0.5, timeout)
    )
    t0 = time.monotonic()
    published: dict[str, float] = {}
    watches = asyncio.run(
        run_stream_clients(http, ws_base, keys, prompts, spread, timeout, published)
    )
    wall = time.monotonic() - t0
    stack.check()
    records = httpx.get(fake_url + "/bench/records", timeout=10).json()
    by_key = {(r["prompt"], r["model"]): r for r in records}
    errors = [w.error for w in watches if w.error]
    battles = [w.battle for w in watches if w.battle]
    rows = list(
        Response.objects.filter(turn__battle__public_id__in=battles).select_related(
            "turn__battle__model_a", "turn__battle__model_b"
        )
    )
    panes = {rid: (w, p) for w in watches for rid, p in w.panes.items()}
    extra: list[float] = []
    provider_ttft: list[float] = []
    user_ttft: list[float] = []
    tail_lag: list[float] = []
    to_layer: list[float] = []
    pickup: list[float] = []
    ws_open: list[float] = []
    post_lat = [w.post_done - w.post_sent for w in watches]
    exact = dup = resync = missing_html = 0
    dump: list[dict[str, Any]] | None = [] if dump_path else None
    via: dict[str, int] = {}
    states: dict[str, int] = {}
    mismatches: list[str] = []
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
        model = row.turn.battle.model_for(row.side).provider_model_id
        rec = by_key.get((row.turn.prompt, model))
        w, pane = panes.get(str(row.public_id), (None, None))
        if rec is None or pane is None or "first_token" not in rec:
            mismatches.append(f"{row.public_id}: no provider record or no frames")
            continue
        provider_ttft.append(rec["first_token"] - rec["arrived"])
        pickup.append(rec["arrived"] - w.post_done)
        ws_open.append(w.ws_open - w.post_done)
        if str(row.public_id) in published:
            to_layer.append(published[str(row.public_id)] - rec["first_token"])
        if pane.first_text_at is not None:
            extra.append(pane.first_text_at - rec["first_token"])
            user_ttft.append(pane.first_text_at - w.post_sent)
            via[pane.first_via] = via.get(pane.first_via, 0) + 1
        tail_lag.append(pane.last_frame_at - rec["last_token"])
        if dump is not None:
            dump.append(
                {
                    "response": str(row.public_id),
                    "side": row.side,
                    "post_sent": w.post_sent,
                    "post_done": w.post_done,
                    "ws_open": w.ws_open,
                    "arrived": rec["arrived"],
                    "first_token": rec["first_token"],
                    "published": published.get(str(row.public_id)),
                    "page": pane.first_text_at,
                    "via": pane.first_via,
                }
            )
        dup += pane.duplicates
        resync += pane.resyncs
        missing_html += not pane.final_html
        if pane.text == row.text and row.text:
            exact += 1
        elif len(mismatches) < 5:
            mismatches.append(
                f"{row.public_id}: page {len(pane.text)} chars vs saved {len(row.text)} chars"
            )
    frames = sum(p.frames for _, p in panes.values())
    if dump_path and dump is not None:
        with open(dump_path, "w") as f:
            json.dump(dump, f)
        print(f"  per-stream timings (CLOCK_MONOTONIC) written to {dump_path}")
    # How many streams were open at the provider at once (request arrival to last token).
    edges = sorted(
        [(r["arrived"], 1) for r in records if "last_token" in r]
        + [(r["last_token"], -1) for r in records if "last_token" in r]
    )
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    print(f"  streams open at the provider at once: peak {peak}")
    print(
        f"  {len(battles)} battles, {len(rows)} responses {states}, wall {wall:.1f} s, "
        f"{frames} frames received ({frames / wall:.0f}/s)"
    )
    print(
        f"  baseline, provider's own first token (request arrival -> first token written): "
        f"median {statistics.median(provider_ttft) * 1000:.0f} ms, "
        f"p99 {pct(provider_ttft, 99) * 1000:.0f} ms"
        if provider_ttft
        else "  no provider records"
    )
    if extra:
        print(
            f"  ours, extra time to first token on the page (first text frame - provider's first "
            f"token): median {statistics.median(extra) * 1000:.0f} ms, p99 "
            f"{pct(extra, 99) * 1000:.0f} ms, max {max(extra) * 1000:.0f} ms "
            f"(first text came by {via})"
        )
        print(
            f"  user-seen time to first token (POST sent -> first text): median "
            f"{statistics.median(user_ttft) * 1000:.0f} ms, p99 {pct(user_ttft, 99) * 1000:.0f} ms"
        )
        print(
            f"  breakdown: POST /arena/ latency median {statistics.median(post_lat) * 1000:.0f} ms, "
            f"p99 {pct(post_lat, 99) * 1000:.0f} ms; POST returned -> provider request arrived median "
            f"{statistics.median(pickup) * 1000:.0f} ms, p99 {pct(pickup, 99) * 1000:.0f} ms; "
            f"POST returned -> WebSocket open median {statistics.median(ws_open) * 1000:.0f} ms, "
            f"p99 {pct(ws_open, 99) * 1000:.0f} ms"
        )
        if to_layer:
            print(
                f"  provider's first token -> first text frame published on the channel layer "
                f"(seen by a Redis subscriber in the client process): median "
                f"{statistics.median(to_layer) * 1000:.0f} ms, p99 {pct(to_layer, 99) * 1000:.0f} ms"
            )
        print(
            f"  last frame after the provider's last token: median "
            f"{statistics.median(tail_lag) * 1000:.0f} ms, p99 {pct(tail_lag, 99) * 1000:.0f} ms"
        )
    print(
        f"  delivered exactly once (page text == saved text): {exact}/{2 * n}; duplicates "
        f"dropped {dup}, resyncs after a gap {resync}, final pane missing {missing_html}"
    )
    for m in mismatches[:5]:
        print(f"    mismatch: {m}")
    for e in errors[:5]:
        print(f"    error: {e}")
    ok = (
        len(extra) == 2 * n
        and statistics.median(extra) < 0.100
        and pct(extra, 99) < 0.500
        and exact == 2 * n
        and missing_html == 0
    )
    print(
        f"  budget median < 100 ms, p99 < 500 ms, every text exactly once: {'PASS' if ok else 'MISS'}"
    )
    return {"ok": ok}


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (smoke run)")
    parser.add_argument("--only", choices=["votes", "starts", "stream"])
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP connections")
    parser.add_argument("--web-workers", type=int, default=5, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--celery-threads", type=int, default=220)
    parser.add_argument(
        "--celery-procs", type=int, default=2,
        help="worker processes (threads split between them): each has its own producer loop",
    )  # fmt: skip
    parser.add_argument("--tps", type=float, default=30.0)
    parser.add_argument("--first-token-delay", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument(
        "--spread", type=float, default=1.0, help="seconds over which the battles are started"
    )
    parser.add_argument("--dump", help="write per-stream timings of the streaming phase (JSON)")
    args = parser.parse_args()
    phases = [args.only] if args.only else ["votes", "starts", "stream"]

    from bench._stack import Stack, free_port

    print(
        f"arena bench: {os.cpu_count()} CPUs, database {DB_URL.rsplit('/', 1)[1]} (fresh), "
        f"Redis {REDIS_URL}; gunicorn {args.web_workers} {args.worker_class} workers, uvicorn "
        f"{args.ws_workers} workers, celery {args.celery_procs} x -P threads "
        f"-c {args.celery_threads // args.celery_procs}" + (" [quick]" if args.quick else "")
    )
    fresh_database()
    flush_redis()
    setup_django()
    stack = Stack(env={**os.environ})
    results: dict[str, dict[str, Any]] = {}
    try:
        fake, fake_url = stack.fake_provider(args.tps, args.first_token_delay, args.tokens)
        models = create_models(fake_url)
        web_port = free_port()
        stack.gunicorn(web_port, args.web_workers, args.worker_class, args.threads)
        http = f"http://127.0.0.1:{web_port}"
        if "votes" in phases:
            results["votes"] = bench_votes(http, models, args.quick, args.concurrency)
        if "starts" in phases:
            results["starts"] = bench_starts(http, args.quick, args.concurrency)
            purge_queues()
        if "stream" in phases:
            ws_port = free_port()
            stack.uvicorn(ws_port, args.ws_workers)
            for i in range(args.celery_procs):
                stack.celery(max(1, args.celery_threads // args.celery_procs), index=i)
            results["stream"] = bench_stream(
                stack, http, f"ws://127.0.0.1:{ws_port}", fake_url, args.quick, args.tps,
                args.first_token_delay, args.tokens, args.spread, args.dump,
            )  # fmt: skip
        stack.check()
    finally:
        stack.stop_all()
        purge_queues()
    print(
        "summary: " + ", ".join(f"{k} {'PASS' if v['ok'] else 'MISS'}" for k, v in results.items())
    )


if __name__ == "__main__":
    main()
