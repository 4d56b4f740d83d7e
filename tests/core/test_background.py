"""The background-work seam on the embedded default and on a real Celery worker."""

import threading
import time
import uuid

import pytest
from django.core.cache import cache
from django.db import transaction

from config.celery import HEARTBEAT_KEY, app, ping
from core import background
from tests.harness import wait_until


@app.task(name="tests.record_thread")
def record_thread(key: str) -> str:
    cache.set(key, threading.current_thread().name, timeout=60)
    return key


def test_embedded_runner_runs_the_task_on_a_worker_thread_not_the_caller():
    runner = background.EmbeddedRunner(2)
    try:
        key = f"emb-{uuid.uuid4().hex}"
        assert runner.submit(record_thread, (key,), {}).result(timeout=10) == key
        assert cache.get(key).startswith("pa-bg")
    finally:
        runner.shutdown()


@pytest.mark.django_db(transaction=True)
def test_enqueue_waits_for_commit_and_skips_on_rollback(settings):
    settings.BACKGROUND_MODE = "embedded"
    committed, rolled_back, after = (f"{name}-{uuid.uuid4().hex}" for name in "cra")
    with transaction.atomic():
        background.enqueue(record_thread, committed)
        # Not before commit: the task must never see rows that may still roll back.
        assert cache.get(committed) is None
    wait_until(lambda: cache.get(committed), timeout=10, what="the embedded task")
    try:
        with transaction.atomic():
            background.enqueue(record_thread, rolled_back)
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    # Run one more task after it and wait for that: the pool is FIFO, so the rolled-back one
    # would have run by then if it had been enqueued.
    background.enqueue(record_thread, after)
    wait_until(lambda: cache.get(after), timeout=10, what="the follow-up task")
    assert cache.get(rolled_back) is None


def test_embedded_scheduler_runs_a_periodic_job_repeatedly():
    runner = background.EmbeddedRunner(2)
    scheduler = background.EmbeddedScheduler(runner)
    cache.delete(HEARTBEAT_KEY)
    job = background.PeriodicJob("hb", "config.heartbeat", 0.05)
    scheduler.start([job])
    try:
        first = wait_until(lambda: cache.get(HEARTBEAT_KEY), timeout=10, what="a first beat")
        second = wait_until(
            lambda: (cache.get(HEARTBEAT_KEY) or 0) > first and cache.get(HEARTBEAT_KEY),
            timeout=10,
            what="a second beat",
        )
        assert second > first
    finally:
        scheduler.stop()
        runner.shutdown()


def test_register_periodic_is_listed_with_the_builtin_heartbeat():
    background.register_periodic("test-job", "config.ping", 30, "x")
    names = {job.name: job for job in background.periodic_jobs()}
    assert names["test-job"].args == ("x",) and names["test-job"].every == 30
    assert "heartbeat" in names
    with pytest.raises(ValueError):
        background.register_periodic("bad", "config.ping", 0)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_celery_task_round_trip_through_redis_and_a_real_worker(celery_worker):
    result = ping.delay("hello-" + celery_worker.url)
    assert result.get(timeout=30) == "hello-" + celery_worker.url


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_celery_seam_runs_enqueued_task_and_beat_runs_the_periodic_job(celery_worker, settings):
    assert settings.BACKGROUND_MODE == "celery"
    # An enqueue through the seam reaches the worker only after commit.
    key = f"celery-seam-{uuid.uuid4().hex}"
    with transaction.atomic():
        background.enqueue("config.heartbeat", key=key)
        assert cache.get(key) is None
    wait_until(lambda: cache.get(key), timeout=30, what="the enqueued task")
    # The heartbeat is registered through the seam; beat (embedded in the worker) runs it.
    cache.delete(HEARTBEAT_KEY)
    started = time.time()
    beat = wait_until(lambda: cache.get(HEARTBEAT_KEY), timeout=30, what="celery beat heartbeat")
    assert beat >= started - 1


def test_generation_tasks_are_routed_to_the_stream_queue():
    from config.celery import app

    app.loader.import_default_modules()
    route = app.amqp.router.route({}, "arena.generate_response", args=(1, 1), kwargs={})
    assert route["queue"].name == "stream"
    assert app.amqp.router.route({}, "config.ping", args=(), kwargs={})["queue"].name == "default"
