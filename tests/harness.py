"""Real processes for integration tests: a Celery worker (with beat) and the ASGI server.

They run as subprocesses pointed at the *test* database and the real Redis, so tests that use
them must be ``transaction=True`` (the subprocesses only see committed rows). Nothing is eager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "test-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of the database the test session is using (the test database, not the main one)."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgresql://{auth}{host}:{port}/{settings_dict['NAME']}"


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval=0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


def _spawn(name: str, args: list[str], env: dict[str, str]) -> Process:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}-{uuid.uuid4().hex[:8]}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches its children
        )
    return Process(name, popen, log_path)


def service_env(db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "TESTING": "1",
            "LOG_JSON": "0",
            "SECURE_COOKIES": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def celery_worker(db_url: str, *, beat: bool = True, **extra_env: str) -> Iterator[Process]:
    """A real ``celery worker`` (threads pool, both queues, optional embedded beat)."""
    from config.celery import app

    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = service_env(db_url, **extra_env)
    schedule = LOG_DIR / f"beat-{uuid.uuid4().hex[:8]}"
    args = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-n", hostname,
        "-Q", "default,stream", "-P", "threads", "-c", "16", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if beat:
        args += ["-B", "-s", str(schedule)]
    process = _spawn("celery", args, env)
    try:

        def answered() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{process.log()[-3000:]}")
            replies = app.control.inspect(destination=[hostname], timeout=0.5).ping() or {}
            return hostname in replies

        wait_until(answered, timeout=60, what="the Celery worker to answer a ping", interval=0.2)
        process.url = hostname
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def asgi_server(db_url: str, **extra_env: str) -> Iterator[Process]:
    """The ASGI application (HTTP + WebSocket) under uvicorn on a free loopback port."""
    import httpx

    port = free_port()
    env = service_env(db_url, **extra_env)
    args = [
        sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = _spawn("asgi", args, env)
    process.url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"ASGI server exited:\n{process.log()[-3000:]}")
            return httpx.get(process.url + "/healthz", timeout=5).status_code in (200, 503)

        wait_until(up, timeout=60, what="the ASGI server to answer /healthz", interval=0.2)
        yield process
    finally:
        process.stop()


class PrivateRedis:
    """A ``redis-server`` of the test's own on a free port (never the shared one), so a fault
    test can stop it and start it again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = _spawn("redis", args, dict(os.environ))
        wait_until(self.answers, timeout=20, what=f"redis-server on port {self.port}")

    def answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl`` on a free port, never the
    shared one), so a fault test can stop and restart it under running processes. Runs as the
    ``postgres`` system user when the tests run as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        import tempfile

        # Not under pytest's tmp_path: that is private to root (0700) and the server runs as
        # the postgres user.
        root = Path(tempfile.mkdtemp(prefix="pa-pg-"))
        root.chmod(0o755)
        self.root = root
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.port = free_port()
        self.data = root / "pgdata"
        self.log_path = root / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def init(self) -> None:
        self.data.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.data.parent, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    import shutil

    pg = PrivatePostgres()
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(RuntimeError):
            pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
