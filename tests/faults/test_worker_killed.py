"""The Celery worker is SIGKILLed while battles stream: no battle stays stuck.

A real worker (with beat) and the ASGI server run against a private PostgreSQL cluster and a
private redis-server; the models are served by the loopback fake provider, streaming slowly.
After the kill a new worker starts: every answer the dead worker was writing ends failed with
"Regenerate" (its lease lapsed and the new worker's sweep ended it, pushing the pane to the open
page), every answer it had not started is handed to the new worker and completes, Regenerate
then completes the failed ones, and the votes cast before the kill are intact.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from celery import Celery

from tests import harness
from tests.faults.conftest import manage
from tests.fakes.fake_llm import Behaviour, FakeLLMServer

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
SELECT b.public_id::text, r.public_id::text, r.state, r.error_kind, r.attempt, r.text
FROM arena_response r JOIN arena_turn t ON t.id = r.turn_id JOIN arena_battle b ON b.id = t.battle_id
WHERE b.public_id::text = ANY(%s) ORDER BY b.id, r.side
"""
FINISHED = {"done", "failed", "stopped"}


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

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=10)


def _states(db_url: str, battles: list[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(STATES, [battles]).fetchall()


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


def test_a_killed_workers_answers_end_with_regenerate_and_nothing_is_lost(
    migrated_url: str, broker_probe: harness.PrivateRedis
) -> None:
    env = {
        "REDIS_URL": broker_probe.url,
        "ARENA_LEASE_SECONDS": str(LEASE_SECONDS),
        "ARENA_LEASE_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }
    with FakeLLMServer() as fake, harness.asgi_server(migrated_url, **env) as web:
        manage(migrated_url, "shell", "-c", SEED.format(base_url=fake.openai_base_url))
        fake.behave("slow-a", SLOW)
        fake.behave("slow-b", SLOW)
        voter = Voter(web.url)
        with harness.celery_worker(migrated_url, **env) as first:
            # Two battles answered and voted before the kill.
            voted = [voter.battle("fast-a", "fast-b", f"Quick question {i}") for i in range(2)]
            harness.wait_until(
                lambda: {r[2] for r in _states(migrated_url, voted)} == {"done"},
                timeout=30,
                what="the fast battles to be answered",
            )
            for battle, winner in zip(voted, ("a", "tie"), strict=True):
                voter.post(f"/arena/b/{battle}/vote/", winner=winner)
            votes_before = _votes(migrated_url)
            assert votes_before == list(zip(voted, ("a", "tie"), strict=True))

            # Ten battles streaming slowly, one page open on the first.
            battles = [voter.battle("slow-a", "slow-b", f"Tell me a story {i}") for i in range(10)]
            socket = Socket(web.url, battles[0], voter.http.cookies["sessionid"])
            assert socket.connected.wait(20)
            harness.wait_until(
                lambda: sum(r[2] == "streaming" for r in _states(migrated_url, battles)) >= 16,
                timeout=30,
                what="the worker's 16 threads to be streaming",
            )
            harness.wait_until(
                lambda: any('"k": "delta"' in m for m in socket.messages),
                timeout=20,
                what="tokens on the open page",
            )
            at_kill = {r[1]: r[2] for r in _states(migrated_url, battles)}
            os.killpg(first.popen.pid, signal.SIGKILL)  # the worker, its beat, its children
            first.popen.wait(timeout=10)
        killed = time.monotonic()
        fake.behave("slow-a", Behaviour())  # what the new worker generates comes at once
        fake.behave("slow-b", Behaviour())
        late = voter.battle("slow-a", "slow-b", "Started while no worker runs")

        with harness.celery_worker(migrated_url, **env):
            up = time.monotonic() - killed
            everything = [*battles, late]

            def clear() -> list[tuple[Any, ...]] | None:
                rows = _states(migrated_url, everything)
                return rows if all(r[2] in FINISHED for r in rows) else None

            rows = harness.wait_until(
                clear, timeout=LEASE_SECONDS + SWEEP_SECONDS + up + 20, what="a clear state"
            )
            seconds = time.monotonic() - killed
            failed = {r[1] for r in rows if r[2] == "failed"}
            done = {r[1] for r in rows if r[2] == "done"}
            print(
                f"\nworker SIGKILLed with {len(at_kill)} answers in flight: clear state "
                f"{seconds:.1f} s after the kill ({len(failed)} failed with Regenerate, "
                f"{len(done)} handed over and done; new worker up after {up:.1f} s; "
                f"lease {LEASE_SECONDS:g} s, sweep every {SWEEP_SECONDS:g} s)"
            )
            assert failed | done == {r[1] for r in rows}
            assert {r[3] for r in rows if r[2] == "failed"} == {"worker_lost"}
            streaming_at_kill = {rid for rid, state in at_kill.items() if state == "streaming"}
            assert streaming_at_kill <= failed and len(streaming_at_kill) >= 16
            assert seconds < LEASE_SECONDS + SWEEP_SECONDS + up + 15

            # The open page got the failed panes pushed, with their Regenerate button.
            harness.wait_until(
                lambda: any("Regenerate this answer" in m for m in socket.messages),
                timeout=10,
                what="the failed panes pushed to the open page",
            )
            socket.close()
            # Every page shows Regenerate for each failed answer, and no answer still writing.
            by_battle: dict[str, int] = {}
            for battle, rid, *_ in rows:
                by_battle[battle] = by_battle.get(battle, 0) + (rid in failed)
            for battle, n_failed in by_battle.items():
                page = voter.page(battle)
                assert page.count("Regenerate this answer") == n_failed, battle
                assert "writing…" not in page

            # Regenerate completes them; then the battles can be voted on.
            for battle, rid, *_ in rows:
                if rid in failed:
                    voter.post(f"/arena/b/{battle}/r/{rid}/regenerate/")
            regenerated = harness.wait_until(
                lambda: (
                    (found := _states(migrated_url, everything))
                    and all(r[2] == "done" for r in found)
                    and found
                ),
                timeout=30,
                what="the regenerated answers",
            )
            for _, rid, _, _, attempt, text in regenerated:
                assert text == Behaviour().text
                assert attempt == (2 if rid in failed else 1)
            voter.post(f"/arena/b/{battles[0]}/vote/", winner="b")

    assert _votes(migrated_url) == [*votes_before, (battles[0], "b")]
    print(json.dumps({"worker_killed_clear_seconds": round(seconds, 1)}))
