"""A fake LLM server: real HTTP on loopback, OpenAI- and Anthropic-shaped, misbehaving on demand.

It runs an asyncio HTTP/1.1 server (keep-alive, chunked responses) in a background thread::

    with FakeLLMServer() as server:
        server.behave("m1", Behaviour(fault="status", status=429, retry_after="2", fail_first=1))
        ...  # point an Endpoint at server.openai_base_url / server.anthropic_base_url
        assert server.count(model="m1") == 2

Behaviour is chosen per request by the ``x-fake-behaviour`` header (JSON of Behaviour fields),
else per model id (:meth:`FakeLLMServer.behave`), else the default. Faults:

- ``status``: answer ``status`` with a JSON error body (and ``Retry-After`` if given)
- ``stall``: stream ``fault_after_tokens`` tokens, then go silent until the server stops
- ``drop``: stream ``fault_after_tokens`` tokens, then abort the TCP connection
- ``malformed``: stream ``fault_after_tokens`` tokens, then a chunk that is not JSON
- ``wrong_content_type``: answer 200 ``text/html``
- ``sse_error``: (Anthropic) send an ``error`` event (``overloaded_error``) after some tokens

``fail_first=N`` applies the fault to the first N requests for that model only, then behaves.
``first_token_delay_s`` and ``tokens_per_s`` set the pace; ``json_response`` answers
``application/json`` even to a streaming request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_TEXT = "Hello from the fake server. It streams a few tokens and then stops."
_TOKEN = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request (see the module docstring)."""

    text: str = DEFAULT_TEXT
    tokens_per_s: float = 0.0
    first_token_delay_s: float = 0.0
    fault: str | None = None
    fail_first: int | None = None
    status: int = 500
    retry_after: str | None = None
    fault_after_tokens: int = 3
    json_response: bool = False


@dataclass
class RecordedRequest:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


class _Aborted(Exception):
    pass


class FakeLLMServer:
    """See the module docstring. ``api_key``, when set, is required (401 otherwise)."""

    def __init__(self, *, api_key: str | None = None, default: Behaviour | None = None) -> None:
        self.api_key = api_key
        self.default = default or Behaviour()
        self.requests: list[RecordedRequest] = []
        self._behaviours: dict[str, Behaviour] = {}
        self._served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- control (any thread) -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def behave(self, model: str, behaviour: Behaviour) -> None:
        """Answer requests for ``model`` with ``behaviour`` (resets its fail_first count)."""
        with self._lock:
            self._behaviours[model] = behaviour
            self._served[model] = 0

    def reset(self) -> None:
        """Forget behaviours and recorded requests."""
        with self._lock:
            self._behaviours.clear()
            self._served.clear()
            self.requests.clear()
            self.default = Behaviour()

    def count(self, *, model: str | None = None, path: str | None = None) -> int:
        """Requests received, optionally only those for ``model`` and/or ``path``."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (model is None or r.model == model) and (path is None or r.path == path)
            )

    def start(self) -> FakeLLMServer:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-llm", daemon=True)
        self._thread.start()
        started.wait()
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving (server thread) --------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                request = RecordedRequest(method, path, headers, body)
                with self._lock:
                    self.requests.append(request)
                try:
                    await self._respond(request, writer)
                except _Aborted:
                    writer.transport.abort()
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    def _choose(self, request: RecordedRequest) -> Behaviour:
        override = request.headers.get("x-fake-behaviour")
        model = request.model or ""
        with self._lock:
            behaviour = self._behaviours.get(model, self.default)
            if override:
                known = {f.name for f in fields(Behaviour)}
                values = {k: v for k, v in json.loads(override).items() if k in known}
                behaviour = replace(behaviour, **values)
            served = self._served[model]
            self._served[model] += 1
        if behaviour.fault and behaviour.fail_first is not None and served >= behaviour.fail_first:
            behaviour = replace(behaviour, fault=None)
        return behaviour

    def _wrong_key(self, request: RecordedRequest, anthropic: bool) -> str | None:
        """The key a request gave when it is not the expected one (None when it may pass)."""
        if self.api_key is None:
            return None
        if anthropic:
            given = request.headers.get("x-api-key")
        else:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return None if given == self.api_key else str(given)

    async def _respond(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> None:
        anthropic = request.path == "/v1/messages"
        if request.method != "POST" or request.path not in ("/v1/chat/completions", "/v1/messages"):
            await _send_simple(writer, 404, "application/json", b'{"error": "not found"}')
            return
        wrong = self._wrong_key(request, anthropic)
        if wrong is not None:
            # Real APIs echo (part of) the wrong key; the client must redact it.
            await _send_error(writer, 401, f"Incorrect API key provided: {wrong}", anthropic)
            return
        b = self._choose(request)
        if b.fault == "status":
            extra = {"Retry-After": b.retry_after} if b.retry_after is not None else {}
            await _send_error(writer, b.status, f"fake failure {b.status}", anthropic, extra)
            return
        if b.fault == "wrong_content_type":
            await _send_simple(writer, 200, "text/html", b"<html>gateway login</html>")
            return
        if b.first_token_delay_s:
            await asyncio.sleep(b.first_token_delay_s)
        body = request.body if isinstance(request.body, dict) else {}
        tokens = _TOKEN.findall(b.text)
        if b.json_response or not body.get("stream"):
            await self._send_json(writer, body, b.text, len(tokens), anthropic)
            return
        await _start_stream(writer)
        events = _anthropic_events(body, tokens) if anthropic else _openai_events(body, tokens)
        await self._stream(b, writer, events)

    async def _stream(
        self, b: Behaviour, writer: asyncio.StreamWriter, events: list[tuple[bool, bytes]]
    ) -> None:
        """Write the SSE events at the behaviour's pace, misbehaving where it says so."""
        start = time.monotonic()
        sent_tokens = 0
        for is_token, payload in events:
            if is_token:
                if b.fault and sent_tokens == b.fault_after_tokens:
                    await self._misbehave(b, writer)
                    return
                if b.tokens_per_s:
                    wait = start + sent_tokens / b.tokens_per_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                sent_tokens += 1
            await _write_chunk(writer, payload)
        await _write_chunk(writer, b"")

    async def _misbehave(self, b: Behaviour, writer: asyncio.StreamWriter) -> None:
        """Carry out a mid-stream fault; the response is over (or the connection gone) after."""
        if b.fault == "stall":
            await asyncio.Event().wait()  # until the server stops
        elif b.fault == "drop":
            raise _Aborted
        elif b.fault == "malformed":
            await _write_chunk(writer, b'data: {"choices": [{"delta": {"content": "x"\n\n')
        elif b.fault == "sse_error":
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            await _write_chunk(writer, _sse(error, "error"))
        else:
            raise ValueError(f"unknown fault {b.fault!r}")
        await _write_chunk(writer, b"")

    async def _send_json(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], text: str, n: int, anthropic: bool
    ) -> None:
        model = body.get("model", "fake")
        if anthropic:
            data: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": n},
            }
        else:
            data = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": _prompt_tokens(body),
                    "completion_tokens": n,
                    "total_tokens": _prompt_tokens(body) + n,
                },
            }
        await _send_simple(writer, 200, "application/json", json.dumps(data).encode())


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    return total + len(str(body.get("system", "")).split())


def _sse(data: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


def _openai_events(body: dict[str, Any], tokens: list[str]) -> list[tuple[bool, bytes]]:
    model = body.get("model", "fake")
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
    out: list[tuple[bool, bytes]] = [
        (False, _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
    ]
    for token in tokens:
        chunk = {**base, "choices": [{"index": 0, "delta": {"content": token}}]}
        out.append((True, _sse(chunk)))
    out.append(
        (False, _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(tokens),
            "total_tokens": _prompt_tokens(body) + len(tokens),
        }
        out.append((False, _sse({**base, "choices": [], "usage": usage})))
    out.append((False, b"data: [DONE]\n\n"))
    return out


def _anthropic_events(body: dict[str, Any], tokens: list[str]) -> list[tuple[bool, bytes]]:
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": 1},
    }
    out: list[tuple[bool, bytes]] = [
        (False, _sse({"type": "message_start", "message": message}, "message_start")),
        (
            False,
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
                "content_block_start",
            ),
        ),
        (False, _sse({"type": "ping"}, "ping")),
    ]
    for token in tokens:
        delta = {"type": "content_block_delta", "index": 0}
        delta["delta"] = {"type": "text_delta", "text": token}  # type: ignore[assignment]
        out.append((True, _sse(delta, "content_block_delta")))
    out += [
        (False, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")),
        (
            False,
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(tokens)},
                },
                "message_delta",
            ),
        ),
        (False, _sse({"type": "message_stop"}, "message_stop")),
    ]
    return out


async def _start_stream(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


async def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()


async def _send_simple(
    writer: asyncio.StreamWriter,
    status: int,
    content_type: str,
    body: bytes,
    extra: dict[str, str] | None = None,
) -> None:
    head = f"HTTP/1.1 {status} Fake\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    for name, value in (extra or {}).items():
        head += f"{name}: {value}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()


async def _send_error(
    writer: asyncio.StreamWriter,
    status: int,
    message: str,
    anthropic: bool,
    extra: dict[str, str] | None = None,
) -> None:
    if anthropic:
        kinds = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
        kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
        data: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        data = {"error": {"message": message, "type": "fake_error", "code": status}}
    await _send_simple(writer, status, "application/json", json.dumps(data).encode(), extra)


@contextlib.contextmanager
def fake_llm_server(**kwargs: Any) -> Any:
    """Context manager form of :class:`FakeLLMServer`."""
    with FakeLLMServer(**kwargs) as server:
        yield server


if __name__ == "__main__":
    # Serve from a separate process (used by bench/providers.py): prints the port, then serves
    # until standard input closes. Per-request behaviour goes in the x-fake-behaviour header.
    import sys

    with FakeLLMServer() as _server:
        print(_server.port, flush=True)
        sys.stdin.read()
