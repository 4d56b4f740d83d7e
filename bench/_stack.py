"""Helpers for ``bench/arena.py``: the production-shaped process stack, the baseline endpoint and
an instrumented fake provider.

- :class:`Stack` spawns gunicorn (WSGI, HTTP), uvicorn (ASGI, WebSockets), a Celery worker
  (threads pool) and the fake provider as subprocesses, each in its own process group, logs
  under ``var/bench-logs/``, and stops exactly the processes it started.
- ``make_wsgi()`` is the gunicorn entry point: the project's WSGI application with one extra URL,
  ``POST /bench/baseline/``, a minimal view that inserts one row in a transaction (the vote
  baseline, served by the same gunicorn with the same middleware). Only the bench uses it.
- ``python -m bench._stack fake --tps 30 --delay 0.5 --words 150`` serves the fake provider
  (``tests/fakes/fake_llm.py``) from its own process, so it does not share a GIL with anything.
  Each stream gets a unique text derived from its prompt and model, and the server records,
  per request, the CLOCK_MONOTONIC time it arrived and the time it wrote the first token chunk
  to the socket; ``GET /bench/records`` returns them as JSON. CLOCK_MONOTONIC is one clock for
  every process on the machine, so the bench can subtract it from the time a WebSocket client
  (in another process) saw the first text.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "bench-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[Any]
    log_path: Path

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


@dataclass
class Stack:
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], **popen: Any) -> Proc:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"arena-{name}.log"
        with log_path.open("wb") as log:
            p = subprocess.Popen(
                args,
                cwd=ROOT,
                env=popen.pop("env", self.env),
                stdout=popen.pop("stdout", log),
                stderr=log,
                start_new_session=True,  # own process group: stop() reaches its children only
                **popen,
            )
        proc = Proc(name, p, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def check(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")

    # -- the production processes ----------------------------------------------------------

    def gunicorn(self, port: int, workers: int, worker_class: str, threads: int) -> Proc:
        args = [
            sys.executable, "-m", "gunicorn", "bench._stack:make_wsgi()",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", worker_class, "--backlog", "2048", "--log-level", "warning",
        ]  # fmt: skip
        if worker_class == "gthread":
            args += ["--threads", str(threads)]
        proc = self.spawn("gunicorn", args)
        self._wait_http(proc, f"http://127.0.0.1:{port}/healthz")
        return proc

    def uvicorn(self, port: int, workers: int) -> Proc:
        args = [
            sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--ws-ping-interval", "20",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        proc = self.spawn("uvicorn", args)
        self._wait_http(proc, f"http://127.0.0.1:{port}/healthz")
        return proc

    def celery(self, concurrency: int, index: int = 0) -> Proc:
        from config.celery import app

        hostname = f"bench-arena-{os.getpid()}-{index}@localhost"
        args = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-n", hostname,
            "-Q", "default,stream", "-P", "threads", "-c", str(concurrency),
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--without-heartbeat",
        ]  # fmt: skip
        # Worker threads borrow a database connection only to read a job and to save it.
        proc = self.spawn(f"celery-{index}", args, env={**self.env, "DB_POOL_MAX": "30"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check()
            replies = app.control.inspect(destination=[hostname], timeout=0.5).ping() or {}
            if hostname in replies:
                return proc
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not answer a ping:\n{proc.tail()}")

    def fake_provider(self, tps: float, delay: float, words: int) -> tuple[Proc, str]:
        args = [
            sys.executable, "-m", "bench._stack", "fake", "--tps", str(tps),
            "--delay", str(delay), "--words", str(words),
        ]  # fmt: skip
        proc = self.spawn("fake", args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.popen.stdout is not None
        port = int(proc.popen.stdout.readline())
        return proc, f"http://127.0.0.1:{port}"

    def _wait_http(self, proc: Proc, url: str) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code in (200, 503):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{proc.name} did not answer {url}:\n{proc.tail()}")


# --- gunicorn entry point with the baseline endpoint -------------------------------------------

BASELINE_TABLE = "bench_baseline_vote"


def _baseline_view(request: Any) -> Any:
    from django.db import connection, transaction
    from django.http import HttpResponse, HttpResponseNotAllowed

    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {BASELINE_TABLE} (battle, winner) VALUES (%s, %s)",
            [request.POST.get("battle", ""), request.POST.get("winner", "")],
        )
    return HttpResponse(status=204)


def __getattr__(name: str) -> Any:
    # ``urlpatterns`` built lazily (this module is also imported before Django is set up).
    if name == "urlpatterns":
        from django.urls import include, path

        return [path("bench/baseline/", _baseline_view), path("", include("config.urls"))]
    raise AttributeError(name)


def make_wsgi() -> Any:
    """The project's WSGI application, with ``/bench/baseline/`` added in front of its URLs."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from config.warmup import warm_up

    application = get_wsgi_application()
    settings.ROOT_URLCONF = "bench._stack"  # before the first request builds the resolver
    warm_up()  # as config.wsgi does
    return application


# --- instrumented fake provider ------------------------------------------------------------

VOCAB = [
    "the",
    "a",
    "model",
    "answer",
    "stream",
    "token",
    "river",
    "stone",
    "light",
    "paper",
    "window",
    "garden",
    "number",
    "signal",
    "quiet",
    "rapid",
    "green",
    "orange",
    "seven",
    "eleven",
    "table",
    "chair",
    "music",
    "letter",
    "ocean",
    "forest",
    "cloud",
    "bridge",
    "engine",
    "pixel",
    "socket",
    "kernel",
    "vector",
    "matrix",
    "tensor",
    "graph",
    "queue",
]


def stream_text(prompt: str, model: str, words: int) -> str:
    """A unique, deterministic answer for (prompt, model): plain words, punctuation, newlines."""
    rng = random.Random(f"{prompt}|{model}")
    out = [f"[{prompt[-12:]}/{model[-3:]}]"]
    for i in range(words - 1):
        w = rng.choice(VOCAB)
        if i % 17 == 16:
            w += ".\n\n"
        elif i % 7 == 6:
            w += ","
        out.append(w)
    return " ".join(out).replace("\n ", "\n")


def serve_fake(tps: float, delay: float, words: int) -> None:  # noqa: C901  (one closure: a fake provider whose shared clock and records only this process uses)
    from dataclasses import replace

    from tests.fakes import fake_llm

    current: contextvars.ContextVar[Any] = contextvars.ContextVar("current", default=None)
    records: dict[str, dict[str, Any]] = {}
    original_write = fake_llm._write_chunk

    async def write_chunk(writer: Any, data: bytes) -> None:
        await original_write(writer, data)
        rec = current.get()
        if rec is not None and b'"content"' in data:
            now = time.monotonic()
            rec.setdefault("first_token", now)
            rec["last_token"] = now
            rec["tokens"] = rec.get("tokens", 0) + 1

    fake_llm._write_chunk = write_chunk  # the module-level helper every response writes through

    class Clock:
        """One timer for every stream: each tick writes the tokens that are due on every open
        stream. A timer and a drain per token (the test server's way) cost the fake provider about
        0.3 of a core at 6,000 tokens/s, CPU that the system under test then does not get; a real
        provider does not run on our cores."""

        TICK = 0.005

        def __init__(self) -> None:
            self.streams: list[list[Any]] = []  # [writer, events, index, start, record, done]
            self.task: asyncio.Task[None] | None = None

        def add(self, writer: Any, events: list[tuple[bool, bytes]], rec: dict[str, Any]) -> Any:
            done = asyncio.get_running_loop().create_future()
            self.streams.append([writer, events, 0, time.monotonic(), rec, done, 0])
            if self.task is None or self.task.done():
                self.task = asyncio.ensure_future(self.run())
            return done

        async def run(self) -> None:
            while self.streams:
                now = time.monotonic()
                keep = []
                for st in self.streams:
                    writer, events, i, start, rec, done, sent = st
                    try:
                        while i < len(events):
                            is_token, payload = events[i]
                            if is_token and start + sent / tps > now:
                                break
                            writer.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                            if is_token:
                                rec.setdefault("first_token", time.monotonic())
                                rec["last_token"] = time.monotonic()
                                rec["tokens"] = rec.get("tokens", 0) + 1
                                sent += 1
                            i += 1
                        if i == len(events):
                            writer.write(b"0\r\n\r\n")
                            done.set_result(None)
                            continue
                    except Exception as exc:  # noqa: BLE001 - the client went away
                        done.set_exception(exc)
                        continue
                    st[2], st[6] = i, sent
                    keep.append(st)
                self.streams = keep
                await asyncio.sleep(self.TICK)

    clock = Clock()

    class Server(fake_llm.FakeLLMServer):
        def _choose(self, request: Any) -> Any:
            b = super()._choose(request)
            body = request.body if isinstance(request.body, dict) else {}
            messages = body.get("messages") or [{}]
            prompt = str(messages[-1].get("content", ""))
            return replace(b, text=stream_text(prompt, str(body.get("model", "")), words))

        async def _respond(self, request: Any, writer: Any) -> None:
            if request.path == "/bench/records":
                data = json.dumps(list(records.values())).encode()
                await fake_llm._send_simple(writer, 200, "application/json", data)
                return
            body = request.body if isinstance(request.body, dict) else {}
            messages = body.get("messages") or [{}]
            rec = {
                "model": body.get("model"),
                "prompt": str(messages[-1].get("content", "")),
                "arrived": request.received_at,
            }
            records[f"{len(records)}"] = rec
            current.set(rec)
            b = self._choose(request)
            if body.get("stream") and b.fault is None and request.path.endswith("/completions"):
                # The plain OpenAI-compatible stream at a fixed rate, on the shared clock.
                await asyncio.sleep(b.first_token_delay_s)
                events = fake_llm._openai_events(body, fake_llm._TOKEN.findall(b.text))
                await fake_llm._start_stream(writer)
                await clock.add(writer, events, rec)
                await writer.drain()
            else:
                await super()._respond(request, writer)
            rec["done"] = time.monotonic()

    default = fake_llm.Behaviour(tokens_per_s=tps, first_token_delay_s=delay)
    with Server(default=default) as server:
        print(server.port, flush=True)
        sys.stdin.read()  # until the bench closes our stdin (or stops the process)


if __name__ == "__main__":
    import argparse

    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["fake"])
    parser.add_argument("--tps", type=float, default=30.0)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--words", type=int, default=150)
    a = parser.parse_args()
    serve_fake(a.tps, a.delay, a.words)
