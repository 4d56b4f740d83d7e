"""The Celery worker is SIGKILLed while it builds a dataset release: the release ends failed
with "retry it" within a bounded time, never "building" forever, and Retry builds it complete.

A real worker (with beat) runs against a private PostgreSQL cluster and a private redis-server
(broker and lease store), so the session's own workers and sweepers do not interfere. The build
is slowed by the test-only ``PREFERENCES_RELEASE_TEST_ROW_DELAY`` (a sleep per row written), so
the kill lands mid-build. A new worker (with beat, unthrottled) starts: its sweep ends the
release as failed once the dead worker's lease lapsed, and removes the dead build's temporary
directory; Retry then builds the release to ``ready`` with every file complete. It prints the
time from the kill to a clear state, with the default lease (30 s) and sweep period (10 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from celery import Celery

from preferences.services import RELEASE_LOST_ERROR
from tests import harness
from tests.faults.conftest import manage

pytestmark = [pytest.mark.services]

LEASE_SECONDS, SWEEP_SECONDS = 30.0, 10.0  # the defaults: the time measured is the real one
PAIRS = 300
ROW_DELAY = 0.05  # seconds per row: the first build takes about 15 s
SEED = f"""
from tests.preferences import factories
for i in range({PAIRS}):
    factories.voted_battle(prompts=[f"prompt {{i}}"], winner="ab"[i % 2])
factories.researcher()
"""
CREATE = """
from django.contrib.auth.models import User
from preferences import services
services.release_create(
    user=User.objects.get(username="researcher"), name="killed", version="1.0", format="hh"
)
"""
RETRY = """
from django.contrib.auth.models import User
from preferences import services
from preferences.models import DatasetRelease
services.release_rebuild(
    user=User.objects.get(username="researcher"), release=DatasetRelease.objects.get()
)
"""


class Release(NamedTuple):
    public_id: str
    status: str
    error: str
    rows_done: int
    row_counts: dict[str, int]
    files: list[dict[str, Any]]


def _release(db_url: str) -> Release | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT public_id::text, status, error, rows_done, row_counts, files"
            " FROM preferences_datasetrelease"
        ).fetchone()
    return Release(*row) if row else None


@pytest.fixture
def broker_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[harness.PrivateRedis]:
    """A private redis-server; the harness pings its workers through it (not the session's)."""
    with harness.private_redis() as redis:
        probe = Celery("probe", broker=redis.url)
        monkeypatch.setattr("config.celery.app", probe)
        yield redis
        probe.close()


def test_a_killed_release_build_ends_failed_and_retry_builds_it_complete(
    migrated_url: str,
    broker_probe: harness.PrivateRedis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(media))  # every process below inherits it
    env = {
        "REDIS_URL": broker_probe.url,
        "PREFERENCES_RELEASE_LEASE_SECONDS": str(LEASE_SECONDS),
        "PREFERENCES_RELEASE_SWEEP_SECONDS": str(SWEEP_SECONDS),
    }
    manage(migrated_url, "shell", "-c", SEED)
    with harness.celery_worker(
        migrated_url, PREFERENCES_RELEASE_TEST_ROW_DELAY=str(ROW_DELAY), **env
    ) as first:
        manage(migrated_url, "shell", "-c", CREATE, redis_url=broker_probe.url)
        harness.wait_until(
            lambda: (r := _release(migrated_url)) and r.status == "building" and r.rows_done >= 40,
            timeout=60,
            what="the release to be mid-build",
        )
        at_kill = _release(migrated_url)
        assert at_kill is not None and at_kill.rows_done < PAIRS
        datasets = media / "datasets"
        assert [p.name.endswith(".tmp") for p in datasets.iterdir()] == [True]
        os.killpg(first.popen.pid, signal.SIGKILL)  # the worker, its beat, its threads
        first.popen.wait(timeout=10)
    killed = time.monotonic()

    with harness.celery_worker(migrated_url, **env):
        up = time.monotonic() - killed
        failed = harness.wait_until(
            lambda: (r := _release(migrated_url)) and r.status != "building" and r,
            timeout=LEASE_SECONDS + SWEEP_SECONDS + up + 15,
            what="the release to leave 'building'",
        )
        seconds = time.monotonic() - killed
        print(
            f"\nworker SIGKILLed mid-build ({at_kill.rows_done}/{PAIRS} rows): release failed "
            f"with a retry {seconds:.1f} s after the kill (new worker up after {up:.1f} s; "
            f"lease {LEASE_SECONDS:g} s, sweep every {SWEEP_SECONDS:g} s)"
        )
        assert failed.status == "failed" and failed.error == RELEASE_LOST_ERROR
        assert seconds < LEASE_SECONDS + SWEEP_SECONDS + up + 5
        assert list(datasets.iterdir()) == []  # the dead build's temporary directory is gone

        manage(migrated_url, "shell", "-c", RETRY, redis_url=broker_probe.url)
        ready = harness.wait_until(
            lambda: (r := _release(migrated_url)) and r.status in ("ready", "failed") and r,
            timeout=60,
            what="the retried build",
        )
    assert ready.status == "ready", ready.error
    assert sum(ready.row_counts.values()) == PAIRS == ready.rows_done
    final = datasets / ready.public_id
    assert sorted(p.name for p in datasets.iterdir()) == [ready.public_id]
    assert sorted(p.name for p in final.iterdir()) == sorted(f["name"] for f in ready.files)
    for info in ready.files:
        data = (final / info["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
    lines = (final / "train.jsonl").read_bytes().count(b"\n")
    assert lines == ready.row_counts["train"]
    print(json.dumps({"release_killed_clear_seconds": round(seconds, 1)}))
