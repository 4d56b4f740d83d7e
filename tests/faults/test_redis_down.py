"""Redis stops under a running site (the ASGI server and a Celery worker both pointed at a
redis-server of the test's own): pages, the battle page, a vote and the API keep answering from
the database; starting a battle is the one documented 503 and leaves no row; ``/healthz`` names
Redis; when Redis is back the same processes start and generate a battle again."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from kombu.exceptions import OperationalError as BrokerError

from arena import services
from arena.models import Battle, Response, Vote
from tests import harness
from tests.arena.factories import battle_with_turn, demo_models

pytestmark = [pytest.mark.services]

PAGES = ["/arena/", "/leaderboard/", "/api/v1/models/", "/api/v1/leaderboard/categories/"]


def _worker(db_url: str, redis_url: str) -> harness.Process:
    """A Celery worker on the private broker (harness.celery_worker asks the shared one)."""
    args = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-n", "redis-down@localhost",
        "-Q", "default,stream", "-P", "threads", "-c", "4", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return harness._spawn("celery", args, harness.service_env(db_url, REDIS_URL=redis_url))


@pytest.fixture
def site(live_database_url: str) -> Iterator[tuple[harness.PrivateRedis, harness.Process]]:
    with harness.private_redis() as redis:
        worker = _worker(live_database_url, redis.url)
        try:
            with harness.asgi_server(live_database_url, REDIS_URL=redis.url) as web:

                def worker_answers() -> bool:
                    if worker.popen.poll() is not None:
                        raise RuntimeError(f"celery worker exited:\n{worker.log()[-3000:]}")
                    return httpx.get(web.url + "/healthz", timeout=10).status_code == 200

                harness.wait_until(worker_answers, timeout=60, what="/healthz to see the worker")
                yield redis, web
        finally:
            worker.stop()


def _voter(http: httpx.Client) -> str:
    """A visitor who has accepted the terms: their session is stored (database and cache)."""
    assert http.get("/arena/").status_code == 200
    http.headers["X-CSRFToken"] = http.cookies["csrftoken"]
    assert http.post("/arena/consent/").status_code == 302
    return services.voter_key(http.cookies["sessionid"])


def _socket_refused(web_url: str, battle_id: str, session_key: str) -> object:
    """How the battle socket ends while Redis is down: a refused handshake or a close code."""
    import websockets

    async def attempt() -> object:
        url = web_url.replace("http://", "ws://") + f"/ws/arena/{battle_id}/"
        try:
            async with websockets.connect(
                url, origin=web_url, additional_headers={"Cookie": f"sessionid={session_key}"}
            ) as ws:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.exceptions.InvalidStatus as exc:
            return exc.response.status_code
        except websockets.exceptions.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        return "open"

    return asyncio.run(attempt())


def _socket_message(web_url: str, battle_id: str, session_key: str) -> str:
    """The first message the battle socket sends (the finished panes of a finished battle)."""
    import websockets

    async def receive() -> str:
        url = web_url.replace("http://", "ws://") + f"/ws/arena/{battle_id}/"
        async with websockets.connect(
            url, origin=web_url, additional_headers={"Cookie": f"sessionid={session_key}"}
        ) as ws:
            return str(await asyncio.wait_for(ws.recv(), 10))

    return asyncio.run(receive())


def _start(http: httpx.Client, prompt: str, **headers: str) -> httpx.Response:
    return http.post("/arena/", data={"prompt": prompt}, headers=headers)


@pytest.mark.django_db(transaction=True)
def test_redis_down_pages_and_votes_work_battles_503_and_it_recovers_without_a_restart(site):
    redis, web = site
    a, b = demo_models(2)
    with httpx.Client(base_url=web.url, timeout=30) as http:
        voter = _voter(http)
        finished = battle_with_turn(a, b, voter=voter)
        battle_url = f"/arena/b/{finished.public_id}/"
        assert http.get(battle_url).status_code == 200

        redis.stop()
        stopped = time.monotonic()
        answers: dict[str, int] = {}
        waits: list[float] = []
        for page in [*PAGES, battle_url]:
            asked = time.monotonic()
            answers[page] = http.get(page).status_code
            waits.append(time.monotonic() - asked)
        assert answers == dict.fromkeys([*PAGES, battle_url], 200)

        asked = time.monotonic()
        refused = _start(http, "while redis is down")
        to_answer = time.monotonic() - asked
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert "The arena is temporarily unavailable" in refused.text
        flash = _start(http, "while redis is down", **{"HX-Request": "true"})
        assert flash.status_code == 200 and flash.headers["HX-Retarget"] == "#flash"
        assert 'data-code="arena_unavailable"' in flash.text
        assert Battle.objects.count() == 1  # nothing created

        vote = http.post(f"{battle_url}vote/", data={"winner": "a"}, headers={"HX-Request": "true"})
        assert vote.status_code == 200 and a.display_name in vote.text  # the reveal
        assert Vote.objects.get(battle=finished).winner == "a"
        assert http.get(battle_url).status_code == 200

        assert _socket_refused(web.url, str(finished.public_id), http.cookies["sessionid"]) in (
            403,
            1013,
        )
        health = http.get("/healthz")
        assert health.status_code == 503 and "cache" in health.json()["down"]
        print(
            f"\nredis down: pages {max(waits):.2f} s at most, battle start 503 in "
            f"{to_answer:.2f} s ({time.monotonic() - stopped:.1f} s after the stop)"
        )

        redis.start()
        restarted = time.monotonic()

        def battle_started() -> str | None:
            response = _start(http, "after redis is back")
            assert response.status_code in (302, 503), response.status_code
            return response.headers["Location"] if response.status_code == 302 else None

        location = harness.wait_until(battle_started, timeout=30, what="a battle to start")
        started = time.monotonic() - restarted
        battle = Battle.objects.get(public_id=location.rstrip("/").rsplit("/", 1)[1])
        harness.wait_until(
            lambda: Response.objects.filter(turn__battle=battle, state="done").count() == 2,
            timeout=60,
            what="the worker to generate the new battle after Redis came back",
        )
        generated = time.monotonic() - restarted
        # A connection pooled before the outage fails once when next used, then is replaced:
        # /healthz and the battle socket may need a second try, and then they stay up.
        harness.wait_until(
            lambda: http.get("/healthz").status_code == 200, timeout=15, what="/healthz ok"
        )
        healthy = time.monotonic() - restarted
        session = http.cookies["sessionid"]
        harness.wait_until(
            lambda: _socket_message(web.url, str(battle.public_id), session),
            timeout=15,
            what="the battle socket to deliver the finished panes",
        )
        live = time.monotonic() - restarted
        print(
            f"redis back: a battle starts {started:.2f} s, is generated {generated:.2f} s, "
            f"/healthz ok {healthy:.2f} s, the socket delivers {live:.2f} s after the restart"
        )
        assert Battle.objects.count() == 2  # the finished one and the new one, no leftovers
        assert [http.get(p).status_code for p in PAGES] == [200] * len(PAGES)
        assert web.popen.poll() is None  # the same processes: nothing was restarted
    # No 500 and no unhandled exception anywhere (channels-redis logs its own lost connection).
    log = web.log()
    assert "Internal Server Error" not in log and "Exception in ASGI application" not in log, log


def test_a_publish_to_a_frozen_broker_fails_within_seconds():
    """The project's Celery settings against a redis-server that accepts connections and never
    answers (SIGSTOP): without a socket timeout the publish waited forever."""
    import os
    import signal

    from celery import Celery

    with harness.private_redis() as redis:
        app = Celery("frozen-broker-probe")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.conf.broker_url = redis.url
        assert redis.process is not None
        os.kill(redis.process.popen.pid, signal.SIGSTOP)
        try:
            asked = time.monotonic()
            with pytest.raises(BrokerError):
                app.send_task("config.ping", ignore_result=True)
            waited = time.monotonic() - asked
        finally:
            os.kill(redis.process.popen.pid, signal.SIGCONT)
        print(f"\nfrozen broker: publish failed after {waited:.2f} s")
        assert waited < 8
