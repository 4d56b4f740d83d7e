"""Generation: one Celery task per response attempt.

The task reads what it needs, closes its database connection, streams from the provider on the
process's producer loop (no connection held, so 200 streams never need 200 connections), then
saves the result in one short conditional UPDATE and pushes the rendered pane to the page.
Idempotent: a redelivered task for an attempt that is already finished or superseded does nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from arena import streaming
from arena.metrics import GENERATIONS, TTFT
from arena.models import LLM, Battle, Provider, Response, Turn, model_identity_words
from arena.providers import (
    Completion,
    Endpoint,
    GenerationParams,
    ProviderError,
    Restart,
    StreamingClient,
    TextDelta,
    get_client,
)
from arena.providers import is_open as circuit_open
from arena.sampling import mark_circuit_open
from arena.text import find_identity_leak, style_features

log = logging.getLogger(__name__)


STOP_CHECK_SECONDS = 0.5
_clients: dict[tuple[Any, ...], StreamingClient] = {}
_client_loops: dict[tuple[Any, ...], asyncio.AbstractEventLoop] = {}


@atexit.register
def _close_clients() -> None:
    """Close the shared provider clients on their own loops when the process exits (an aiohttp
    session left open complains from its finaliser while the interpreter shuts down)."""
    for key, client in list(_clients.items()):
        loop = _client_loops.get(key)
        if loop is None or loop.is_closed() or not loop.is_running():
            continue
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=2)
    _clients.clear()


async def _client(endpoint: Endpoint) -> StreamingClient:
    """One client (one HTTP connection pool) per provider settings per event loop, kept for
    the life of the process: streams reuse keep-alive connections instead of a new client and
    TCP connection each. The key changes when an operator edits the provider."""
    key = (
        id(asyncio.get_running_loop()),
        endpoint.kind,
        endpoint.name,
        endpoint.base_url,
        endpoint.api_key,
        endpoint.timeouts,
        endpoint.max_concurrency,
        endpoint.rpm,
        endpoint.max_retries,
        tuple(sorted(endpoint.extra_headers.items())),
        repr(sorted(endpoint.options.items())),
    )
    client = _clients.get(key)
    if client is None:
        client = await get_client(endpoint).__aenter__()
        _clients[key] = client
        _client_loops[key] = asyncio.get_running_loop()
    return client


@dataclass
class Job:
    response_pk: int
    public_id: str
    battle_public_id: str
    side: str
    attempt: int
    provider: str
    endpoint: Endpoint
    params: GenerationParams
    messages: list[dict[str, str]]
    leak_words: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    text: str = ""
    completion: Completion | None = None
    error: ProviderError | None = None
    stopped: bool = False
    restarts: int = 0


def _claim(response_pk: int, attempt: int) -> tuple[Any, ...] | None:
    """Claim the attempt (pending -> streaming) and read the turn and battle it belongs to: one
    statement on PostgreSQL (UPDATE ... FROM ... RETURNING), an UPDATE and a SELECT in one
    transaction elsewhere (SQLite's RETURNING sees only the updated table)."""
    response, turn, battle = Response._meta.db_table, Turn._meta.db_table, Battle._meta.db_table
    columns = (
        f"{response}.public_id, {response}.side, t.{connection.ops.quote_name('index')},"
        f" t.prompt, b.id, b.public_id, b.model_a_id, b.model_b_id"
    )
    claim = [Response.State.STREAMING, response_pk, attempt, Response.State.PENDING]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {response} SET state = %s FROM {turn} t JOIN {battle} b"
                f" ON b.id = t.battle_id WHERE {response}.id = %s AND {response}.attempt = %s"
                f" AND {response}.state = %s AND t.id = {response}.turn_id RETURNING {columns}",
                claim,
            )
            return cursor.fetchone()  # type: ignore[no-any-return]
        with transaction.atomic():
            cursor.execute(
                f"UPDATE {response} SET state = %s WHERE id = %s AND attempt = %s AND state = %s",
                claim,
            )
            if cursor.rowcount != 1:
                return None
            cursor.execute(
                f"SELECT {columns} FROM {response} JOIN {turn} t ON t.id = {response}.turn_id"
                f" JOIN {battle} b ON b.id = t.battle_id WHERE {response}.id = %s",
                [response_pk],
            )
            return cursor.fetchone()  # type: ignore[no-any-return]


def _load_job(response_pk: int, attempt: int) -> Job | None:
    """Claim the attempt (pending -> streaming) and read everything the stream needs.

    The claim and the read are one statement (UPDATE ... RETURNING), the conversation so far one
    more query only after the first turn, the two models one query: this runs for every response
    of a burst of battle starts, next to the streams already running in the process."""
    row = _claim(response_pk, attempt)
    if row is None:
        return None  # finished, stopped, superseded by a regenerate, or already running
    public_id, side, index, prompt, battle_pk, battle_public_id, model_a_id, model_b_id = row
    public_id = _RESPONSE_PUBLIC_ID.to_python(public_id)
    battle_public_id = _BATTLE_PUBLIC_ID.to_python(battle_public_id)
    messages: list[dict[str, str]] = []
    if index > 0:
        earlier = (
            Response.objects.filter(turn__battle_id=battle_pk, turn__index__lt=index, side=side)
            .order_by("turn__index")
            .values_list("turn__prompt", "text")
        )
        for previous_prompt, previous_text in earlier:
            messages.append({"role": "user", "content": previous_prompt})
            messages.append({"role": "assistant", "content": previous_text})
    messages.append({"role": "user", "content": prompt})
    models = _models(model_a_id, model_b_id)
    llm = models[model_a_id if side == "a" else model_b_id]
    words = list(settings.ARENA_LEAK_WORDS)
    for model in (models[model_a_id], models[model_b_id]):
        words += model_identity_words(model)
    seed = int(public_id.int % 2**31)
    return Job(
        response_pk=response_pk,
        public_id=str(public_id),
        battle_public_id=str(battle_public_id),
        side=side,
        attempt=attempt,
        provider=llm.provider.name,
        endpoint=llm.provider.to_endpoint(),
        params=llm.generation_params(seed=seed),
        messages=messages,
        leak_words=words,
    )


MODELS_TTL = 5.0
_models_cache: dict[int, tuple[float, LLM]] = {}


def _models(*ids: int) -> dict[int, LLM]:
    """The battle's models with their providers, re-read at most every few seconds per process
    (as the pair sampler does): every response of a burst of battles needs the same few rows,
    and an operator's edit reaches the next generations within ``MODELS_TTL``."""
    now = time.monotonic()
    found = {i: hit[1] for i in ids if (hit := _models_cache.get(i)) and now - hit[0] < MODELS_TTL}
    missing = [i for i in ids if i not in found]
    if missing:
        for pk, llm in LLM.objects.select_related("provider").in_bulk(missing).items():
            _models_cache[pk] = (now, llm)
            found[pk] = llm
    return found


@receiver([post_save, post_delete], sender=LLM)
@receiver([post_save, post_delete], sender=Provider)
def _forget_models(**kwargs: Any) -> None:
    _models_cache.clear()  # this process at once; the others within MODELS_TTL


_RESPONSE_PUBLIC_ID = Response._meta.get_field("public_id")
_BATTLE_PUBLIC_ID = Battle._meta.get_field("public_id")


async def _stream(job: Job) -> Outcome:
    out = Outcome()
    flush_every = settings.ARENA_STREAM_FLUSH_SECONDS
    pending = ""
    text = ""
    epoch = streaming.epoch_of(job.attempt)
    base = {"r": job.public_id, "side": job.side}
    pub = streaming.publisher()
    sent = pub.post(  # the last post: awaited before the result is saved
        job.battle_public_id,
        {"k": "reset", **base, "epoch": epoch},
        response_public_id=job.public_id,
        epoch=epoch,
    )
    last_flush = 0.0  # the first delta goes out at once
    last_stop_check = 0.0  # the first flush checks at once, then twice a second
    stop_check: asyncio.Future[bool] | None = None

    def flush(now: float) -> None:
        nonlocal pending, text, last_flush, last_stop_check, stop_check, sent
        last_flush = now
        if not pending:
            return
        offset = len(text)
        text += pending
        # The publisher writes the partial text before it publishes the frame: a page that
        # reconnects gets a snapshot at least this fresh. A stop is a human's click: reading
        # its flag in the same round trip twice a second is enough.
        check = now - last_stop_check >= STOP_CHECK_SECONDS
        sent = pub.post(
            job.battle_public_id,
            {"k": "delta", **base, "epoch": epoch, "offset": offset, "text": pending},
            response_public_id=job.public_id,
            text=pending,
            stop_attempt=job.attempt if check else None,
        )
        if check:
            last_stop_check, stop_check = now, sent
        pending = ""

    streaming.stream_started()
    try:
        client = await _client(job.endpoint)
        # aclosing: a stop breaks out of the stream; the provider call must end at once.
        async with aclosing(client.stream(job.messages, job.params)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    pending += event.text
                    now = time.monotonic()
                    if now - last_flush >= streaming.flush_interval(flush_every):
                        flush(now)
                    if stop_check is not None and stop_check.done():
                        if stop_check.result():
                            out.stopped = True
                            break
                        stop_check = None
                elif isinstance(event, Restart):
                    # The provider retried after tokens had streamed: discard, never duplicate.
                    out.restarts += 1
                    pending, text = "", ""
                    epoch = streaming.epoch_of(job.attempt, out.restarts)
                    sent = pub.post(
                        job.battle_public_id,
                        {"k": "reset", **base, "epoch": epoch},
                        response_public_id=job.public_id,
                        epoch=epoch,
                    )
                elif isinstance(event, Completion):
                    out.completion = event
        flush(time.monotonic())
    except ProviderError as exc:
        out.error = exc
    finally:
        streaming.stream_finished()
        # Every frame is out before the result is saved and the finished pane pushed.
        await asyncio.shield(sent)
    out.text = out.completion.text if out.completion is not None else text
    return out


def _save(job: Job, out: Outcome) -> bool:
    now = timezone.now()
    fields: dict[str, Any] = {"completed_at": now, "text": out.text}
    if out.error is not None:
        fields.update(
            state=Response.State.FAILED,
            error_kind=type(out.error).__name__,
            error_message=out.error.user_message[:500],
            provider_attempts=getattr(out.error, "attempts", 0) or 0,
        )
    else:
        features = style_features(out.text)
        fields.update(
            state=Response.State.STOPPED if out.stopped else Response.State.DONE,
            length=features.length,
            header_count=features.header_count,
            list_count=features.list_count,
            bold_count=features.bold_count,
            leaks_identity=find_identity_leak(out.text, job.leak_words) is not None,
        )
        if out.completion is not None:
            c = out.completion
            fields.update(
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                finish_reason=(c.finish_reason or "")[:32],
                latency_ms=int(c.latency_s * 1000) if c.latency_s is not None else None,
                ttft_ms=int(c.ttft_s * 1000) if c.ttft_s is not None else None,
                provider_attempts=c.attempts,
            )
        else:
            fields["finish_reason"] = "stopped"
    # Conditional on the attempt: a regenerate that started meanwhile wins; this result is dropped.
    return bool(
        Response.objects.filter(
            pk=job.response_pk, attempt=job.attempt, state=Response.State.STREAMING
        ).update(**fields)
    )


def push_panes(battle_public_id: str, response_pks: list[int] | None = None) -> None:
    """Render the finished panes and vote bar (same partials as the page) and push them."""
    from arena.views import render_live_update

    html = render_live_update(battle_public_id)
    if html:
        streaming.run(streaming.send_html(battle_public_id, html), timeout=30)


@shared_task(
    name="arena.generate_response",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=900,
    time_limit=960,
)
def generate_response(response_pk: int, attempt: int) -> str:
    job = _load_job(response_pk, attempt)
    if job is None:
        return "skipped"
    if not connection.in_atomic_block:  # (tests may run the task inside their transaction)
        connection.close()  # hold no database connection while streaming
    started = time.monotonic()
    try:
        out = streaming.run(_stream(job), timeout=job.endpoint.timeouts.total_s + 60)
    except Exception as exc:  # noqa: BLE001 - a broken stream must end in a failed response
        log.exception("generation crashed", extra={"response": job.public_id})
        from arena.providers import UpstreamError

        out = Outcome(error=UpstreamError("The model could not answer; try regenerating."))
        del exc
    if out.error is not None and circuit_open(job.provider):
        mark_circuit_open(job.provider, 30)
    saved = _save(job, out)
    outcome = "failed" if out.error else ("stopped" if out.stopped else "done")
    GENERATIONS.labels(provider=job.provider, outcome=outcome).inc()
    if out.completion is not None and out.completion.ttft_s is not None:
        TTFT.labels(provider=job.provider).observe(out.completion.ttft_s)
    if saved:
        push_panes(job.battle_public_id)
    log.info(
        "generation finished",
        extra={
            "response": job.public_id,
            "outcome": outcome,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return outcome
