"""The Celery worker is SIGKILLed while battles stream: no battle stays stuck.

A real worker (with beat) and the ASGI server run against a private PostgreSQL cluster and a
private redis-server; the models are served by the loopback fake provider, streaming slowly.
After the kill a new worker starts: every answer the dead worker was writing ends failed with
"Regenerate" (its lease lapsed and the new worker's sweep ended it, pushing the pane to the open
page), every answer it had not started is handed to the new worker and completes, a Stop on an
answer of the dead worker ends it at once, Regenerate then completes the failed and stopped
ones, and the votes cast before the kill are intact. It prints the time from the kill to a
clear state (every answer finished), with the default lease (15 s) and sweep period (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import httpx
import psycopg
import pytest
import redis
from celery import Celery

from core.leases import lease_key
from tests import harness
from tests.fakes.fake_llm import Behaviour, FakeLLMServer
from tests.faults.conftest import manage

pytestmark = [pytest.mark.services]

LEASE_SECONDS, SWEEP_SECONDS = 15.0, 10.0  # the defaults: the time measured is the real one
SLOW = Behaviour(text=" ".join(f"word{i}" for i in range(600)), tokens_per_s=6)
SEED = """
from arena.models import LLM, Provider
p = Provider.objects.create(name="fake", kind="openai", base_url={base_url!r}, max_concurrency=64)
for slug in ("fast-a", "fast-b", "slow-a", "slow-b"):
    LLM.objects.create(provider=p, slug=slug, display_name=slug, provider_model_id=slug)
"""
STATES = """
SELECT b.public_id::text, r.public_id::text, r.id, r.state, r.error_kind, r.attempt, r.text
FROM arena_response r JOIN arena_turn t ON t.id = r.turn_id JOIN arena_battle b ON b.id = t.battle_id
WHERE b.public_id::text = ANY(%s) ORDER BY b.id, r.side
"""
FINISHED = {"done", "failed", "stopped"}


class Row(NamedTuple):
    """A response as stored (read straight from the private database)."""

    battle: str
    response: str
    pk: int
    state: str
    error_kind: str
    attempt: int
    text: str


class Voter:
    """One browser session over HTTP: consent, battles, votes, regenerate, pages."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
        self.http.get("/arena/").raise_for_status()
        self.csrf = {"X-CSRFToken": self.http.cookies["csrftoken"]}
        self.post("/arena/consent/")

    def post(self, url: str, **data: str) -> httpx.Response:
        answer = self.http.post(url, data=data, headers=self.csrf)
        assert answer.status_code in (200, 204, 302), (url, answer.status_code, answer.text[:500])
        return answer

    def battle(self, model_a: str, model_b: str, prompt: str) -> str:
        answer = self.post("/arena/", prompt=prompt, mode="named", model_a=model_a, model_b=model_b)
        found = re.search(r"/arena/b/([0-9a-f-]{36})/", answer.headers["location"])
        assert found, answer.headers
        return found.group(1)

    def page(self, battle: str) -> str:
        answer = self.http.get(f"/arena/b/{battle}/")
        answer.raise_for_status()
        return answer.text


class Socket:
    """The battle page's WebSocket, read on a thread: every message it gets, in order."""

    def __init__(self, base_url: str, battle: str, session: str) -> None:
        self.url = base_url.replace("http://", "ws://") + f"/ws/arena/{battle}/"
        self.origin = base_url
        self.cookie = f"sessionid={session}"
        self.messages: list[str] = []
        self.connected = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._read()), daemon=True)
        self.thread.start()

    async def _read(self) -> None:
        import websockets

        headers = {"Cookie": self.cookie}
        async with websockets.connect(
            self.url, origin=self.origin, additional_headers=headers
        ) as ws:
            self.connected.set()
            while not self.closing.is_set():
                try:
                    self.messages.append(str(await asyncio.wait_for(ws.recv(), 0.2)))
                except TimeoutError:
                    continue

    def saw(self, text: str) -> bool:
        return any(text in message for message in self.messages)

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=10)


def _states(db_url: str, battles: list[str]) -> list[Row]:
    with psycopg.connect(db_url) as conn:
        return [Row(*row) for row in conn.execute(STATES, [battles]).fetchall()]


def _votes(db_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT b.public_id::text, v.winner FROM arena_vote v"
            " JOIN arena_battle b ON b.id = v.battle_id ORDER BY v.id"
        ).fetchall()
    return [(battle, winner) for battle, winner in rows]


@pytest.fixture
def broker_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[harness.PrivateRedis]:
    """A private redis-server; the harness pings its workers through it (not the session's)."""
    with harness.private_redis() as redis:
        probe = Celery("probe", broker=redis.url)
        monkeypatch.setattr("config.celery.app", probe)
        yield redis
        probe.close()


@dataclass
class Stage:
    """The running system: the web server, one voter and their open page, the database and the
    private broker (also the lease store)."""

    db: str
    broker: str
    web: harness.Process
    voter: Voter
    socket: Socket | None = None

    def states(self, battles: list[str]) -> list[Row]:
        return _states(self.db, battles)

    def answer_and_vote(self) -> list[tuple[str, str]]:
        """Two battles answered and voted before the kill; the votes as stored."""
        voted = [self.voter.battle("fast-a", "fast-b", f"Quick question {i}") for i in range(2)]
        harness.wait_until(
            lambda: {r.state for r in self.states(voted)} == {"done"},
            timeout=30,
            what="the fast battles to be answered",
        )
        for battle, winner in zip(voted, ("a", "tie"), strict=True):
            self.voter.post(f"/arena/b/{battle}/vote/", winner=winner)
        votes = _votes(self.db)
        assert votes == list(zip(voted, ("a", "tie"), strict=True))
        return votes

    def stream(self) -> list[str]:
        """Ten battles streaming slowly, a page open on the first; returns once the worker's 16
        threads stream and tokens reach the page."""
        battles = [self.voter.battle("slow-a", "slow-b", f"A story {i}") for i in range(10)]
        self.socket = Socket(self.web.url, battles[0], self.voter.http.cookies["sessionid"])
        assert self.socket.connected.wait(20)
        harness.wait_until(
            lambda: sum(r.state == "streaming" for r in self.states(battles)) >= 16,
            timeout=30,
            what="the worker's 16 threads to be streaming",
        )
        harness.wait_until(
            lambda: self.socket is not None and self.socket.saw('"k": "delta"'),
            timeout=20,
            what="tokens on the open page",
        )
        return battles

    def stop_an_orphan(self, row: Row) -> None:
        """Once the dead worker's lease on ``row`` has lapsed, Stop ends it at once (no worker
        is left to), with the text the page was shown, and pushes its pane."""
        store = redis.Redis.from_url(self.broker)
        key = lease_key("arena.response", row.pk, row.attempt)
        harness.wait_until(
            lambda: not store.exists(key),
            timeout=LEASE_SECONDS + 5,
            what="the dead worker's lease to lapse",
        )
        self.voter.post(f"/arena/b/{row.battle}/r/{row.response}/stop/")
        (stopped,) = [r for r in self.states([row.battle]) if r.response == row.response]
        assert stopped.state == "stopped" and stopped.text.startswith("word0 word1")
        harness.wait_until(
            lambda: self.socket is not None and self.socket.saw(">Regenerate</button>"),
            timeout=10,
            what="the stopped pane pushed to the open page",
        )

    def check_pages_and_regenerate(self, rows: list[Row], again: set[str]) -> None:
        """Every page shows Regenerate for each failed answer and none still writing; then
        Regenerate completes the failed and stopped ones."""
        for battle in dict.fromkeys(r.battle for r in rows):
            page = self.voter.page(battle)
            failed = sum(r.battle == battle and r.state == "failed" for r in rows)
            assert page.count("Regenerate this answer") == failed, battle
            assert "writing…" not in page and "waiting…" not in page
        for row in rows:
            if row.response in again:
                self.voter.post(f"/arena/b/{row.battle}/r/{row.response}/regenerate/")
        battles = list(dict.fromkeys(r.battle for r in rows))
        regenerated = harness.wait_until(
            lambda: (
                (found := self.states(battles)) and all(r.state == "done" for r in found) and found
            ),
            timeout=30,
            what="the regenerated answers",
        )
        for row in regenerated:
            assert row.text == Behaviour().text
            assert row.attempt == (2 if row.response in again else 1)


def test_a_killed_workers_answers_end_with_regenerate_and_nothing_is_lost(
    migrated_url: str, broker_probe: harness.PrivateRedis
) -> None:
    env = {
        "REDIS_URL": broker_probe.url,
        "ARENA_LEASE_SECONDS": str(LEASE_SECONDS),
        "ARENA_LEASE_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }
    # Exits run in reverse: the boot thread is done before the processes are stopped.
    with (
        FakeLLMServer() as fake,
        contextlib.ExitStack() as running,
        ThreadPoolExecutor(1) as boot,
    ):
        # The seed and the web server's boot overlap (each takes seconds on a busy machine).
        seed = SEED.format(base_url=fake.openai_base_url)
        seeding = boot.submit(manage, migrated_url, "shell", "-c", seed)
        web = running.enter_context(harness.asgi_server(migrated_url, **env))
        seeding.result()
        fake.behave("slow-a", SLOW)
        fake.behave("slow-b", SLOW)
        stage = Stage(migrated_url, broker_probe.url, web, Voter(web.url))
        running.callback(lambda: stage.socket and stage.socket.close())

        with harness.celery_worker(migrated_url, **env) as first:
            votes_before = stage.answer_and_vote()
            battles = stage.stream()
            at_kill = stage.states(battles)
            os.killpg(first.popen.pid, signal.SIGKILL)  # the worker, its beat, its children
            first.popen.wait(timeout=10)
        killed = time.monotonic()
        fake.behave("slow-a", Behaviour())  # what the new worker generates comes at once
        fake.behave("slow-b", Behaviour())

        # The new worker boots while a battle starts with no worker and Stop meets an orphan.
        def start_worker() -> float:
            running.enter_context(harness.celery_worker(migrated_url, **env))
            return time.monotonic() - killed

        booting = boot.submit(start_worker)
        late = stage.voter.battle("slow-a", "slow-b", "Started while no worker runs")
        orphan = next(r for r in at_kill if r.battle == battles[0] and r.state == "streaming")
        stage.stop_an_orphan(orphan)
        up = booting.result()

        everything = [*battles, late]
        rows = harness.wait_until(
            lambda: (
                (found := stage.states(everything))
                and all(r.state in FINISHED for r in found)
                and found
            ),
            timeout=LEASE_SECONDS + SWEEP_SECONDS + up + 20,
            what="a clear state",
        )
        seconds = time.monotonic() - killed
        failed = {r.response for r in rows if r.state == "failed"}
        done = {r.response for r in rows if r.state == "done"}
        print(
            f"\nworker SIGKILLed with {len(at_kill)} answers in flight: clear state "
            f"{seconds:.1f} s after the kill ({len(failed)} failed with Regenerate, 1 stopped "
            f"by its voter, {len(done)} handed over and done; new worker up after {up:.1f} s; "
            f"lease {LEASE_SECONDS:g} s, sweep every {SWEEP_SECONDS:g} s)"
        )
        assert failed | done | {orphan.response} == {r.response for r in rows}
        assert {r.error_kind for r in rows if r.state == "failed"} == {"worker_lost"}
        streaming_at_kill = {r.response for r in at_kill if r.state == "streaming"}
        assert len(streaming_at_kill) >= 16 and streaming_at_kill - {orphan.response} <= failed
        assert seconds < LEASE_SECONDS + SWEEP_SECONDS + up + 15
        # The open page got the failed pane pushed by the sweep, with its Regenerate button.
        harness.wait_until(
            lambda: stage.socket is not None and stage.socket.saw("Regenerate this answer"),
            timeout=10,
            what="the failed pane pushed to the open page",
        )
        stage.check_pages_and_regenerate(rows, again=failed | {orphan.response})
        stage.voter.post(f"/arena/b/{battles[0]}/vote/", winner="b")
    assert _votes(migrated_url) == [*votes_before, (battles[0], "b")]
    print(json.dumps({"worker_killed_clear_seconds": round(seconds, 1)}))
