"""Fault tests: the production processes run against services each test owns (a private
redis-server, a private PostgreSQL cluster), which the test stops and starts under them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import harness


def manage(db_url: str, *args: str, redis_url: str = "", timeout: float = 180) -> str:
    env = harness.service_env(db_url, DEBUG="1", REDIS_URL=redis_url)
    if not redis_url:
        env.pop("REDIS_URL")
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[harness.PrivatePostgres]:
    with harness.private_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def migrated_url(private_postgres: harness.PrivatePostgres) -> str:
    url = private_postgres.create_database("faults")
    manage(url, "migrate", "--noinput", "-v0")
    return url
