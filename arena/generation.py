"""Generation of one response attempt, as one path: lease, claim, stream, finish, release.

0. :func:`response_lease` takes the attempt's lease (``core.leases``) before anything else: a
   redelivered task whose attempt another worker holds exits here, touching nothing. The
   process renews the lease while the attempt streams; when the process dies it lapses and
   the sweeper (``arena.recovery``) ends the response as failed (``worker_lost``).
1. :func:`response_claim` claims the attempt (pending -> streaming, conditional, so a redelivered
   task or a superseded attempt gets None) and reads everything the stream needs into a
   :class:`Job`. The caller then closes its database connection: 200 streams must never need
   200 connections.
2. :class:`ResponseStream` streams from the provider on the process's producer loop and posts
   the frames and the partial text through the loop's ``Publisher`` (the protocol is in
   ``arena/streaming.py``). It touches no database.
3. :func:`response_finish` saves the result in one short UPDATE conditional on the attempt and
   its streaming state: a regenerate that started meanwhile, or the sweeper that ended the
   attempt after its lease lapsed, wins and this result is dropped.

Then the caller pushes the finished panes (``arena.fragments.push_live_update``), after the
stream's last frame is out, so the page never gets a frame after its pane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

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
    Message,
    ProviderError,
    Restart,
    StreamEvent,
    TextDelta,
    UpstreamError,
)
from arena.providers import is_open as circuit_open
from arena.providers.pool import client_for
from arena.sampling import mark_circuit_open
from arena.text import find_identity_leak, style_features
from core import leases

log = logging.getLogger(__name__)

STOP_CHECK_SECONDS = 0.5
CIRCUIT_MARK_SECONDS = 30


@dataclass
class Job:
    """What one attempt's stream needs, read before the database connection is closed."""

    response_pk: int
    public_id: str
    battle_public_id: str
    side: str
    attempt: int
    provider: str
    endpoint: Endpoint
    params: GenerationParams
    messages: list[Message]
    leak_words: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """How a stream ended: ``completion`` when the provider finished, ``error`` when it failed,
    ``stopped`` when the voter stopped it; ``text`` is what is saved."""

    text: str = ""
    completion: Completion | None = None
    error: ProviderError | None = None
    stopped: bool = False
    restarts: int = 0

    @property
    def kind(self) -> str:
        """``failed``, ``stopped`` or ``done`` (the task's result and the metrics label)."""
        return "failed" if self.error else ("stopped" if self.stopped else "done")


# --- lease ------------------------------------------------------------------------------------

LEASE_KIND = "arena.response"


def attempt_lease_key(response_pk: int, attempt: int) -> str:
    return leases.lease_key(LEASE_KIND, response_pk, attempt)


def response_lease(*, response_pk: int, attempt: int) -> leases.Lease | None:
    """Take the attempt's lease (renewed by this process until released); None when another
    delivery of the attempt holds it."""
    return leases.acquire(attempt_lease_key(response_pk, attempt), ttl=settings.ARENA_LEASE_SECONDS)


def attempt_alive(response_pk: int, attempt: int) -> bool:
    """Whether a live worker holds the attempt's lease."""
    return leases.alive([attempt_lease_key(response_pk, attempt)])[0]


# --- claim ------------------------------------------------------------------------------------


def _claim_row(response_pk: int, attempt: int) -> tuple[Any, ...] | None:
    """Claim the attempt (pending -> streaming) and read the turn and battle it belongs to: one
    statement on PostgreSQL (UPDATE ... FROM ... RETURNING), an UPDATE and a SELECT in one
    transaction elsewhere (SQLite's RETURNING sees only the updated table)."""
    response, turn, battle = Response._meta.db_table, Turn._meta.db_table, Battle._meta.db_table
    columns = (
        f"{response}.public_id, {response}.side, t.{connection.ops.quote_name('index')},"
        f" t.prompt, b.id, b.public_id, b.model_a_id, b.model_b_id"
    )
    claim: list[str | int] = [
        Response.State.STREAMING,
        response_pk,
        attempt,
        Response.State.PENDING,
    ]
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


_RESPONSE_PUBLIC_ID = Response._meta.get_field("public_id")
_BATTLE_PUBLIC_ID = Battle._meta.get_field("public_id")


def _conversation(battle_pk: int, index: int, side: str, prompt: str) -> list[Message]:
    """The side's conversation up to this turn's prompt (one query, only after the first turn)."""
    messages: list[Message] = []
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
    return messages


def response_claim(*, response_pk: int, attempt: int) -> Job | None:
    """Claim the attempt and read everything its stream needs; None when the attempt is not
    current (finished, stopped, superseded by a regenerate, or already running).

    The claim and the read are one statement (UPDATE ... RETURNING), the conversation so far one
    more query only after the first turn, the two models one query at most: this runs for every
    response of a burst of battle starts, next to the streams already running in the process."""
    row = _claim_row(response_pk, attempt)
    if row is None:
        return None
    public_id, side, index, prompt, battle_pk, battle_public_id, model_a_id, model_b_id = row
    public_id = _RESPONSE_PUBLIC_ID.to_python(public_id)
    battle_public_id = _BATTLE_PUBLIC_ID.to_python(battle_public_id)
    models = _models(model_a_id, model_b_id)
    llm = models[model_a_id if side == "a" else model_b_id]
    words = leak_words(models[model_a_id], models[model_b_id])
    return Job(
        response_pk=response_pk,
        public_id=str(public_id),
        battle_public_id=str(battle_public_id),
        side=side,
        attempt=attempt,
        provider=llm.provider.name,
        endpoint=llm.provider.to_endpoint(),
        params=llm.generation_params(seed=int(public_id.int % 2**31)),
        messages=_conversation(battle_pk, index, side, prompt),
        leak_words=words,
    )


def leak_words(model_a: LLM, model_b: LLM) -> list[str]:
    """Words whose presence in an answer reveals a model of the battle (or any vendor)."""
    words = list(settings.ARENA_LEAK_WORDS)
    for model in (model_a, model_b):
        words += model_identity_words(model)
    return words


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


# --- stream -----------------------------------------------------------------------------------


class ResponseStream:
    """One attempt's stream from the provider to the page; built and run on the producer loop.

    Text arrives as deltas and waits in ``pending`` until a flush posts it (the first delta of
    the stream at once, later ones every ``flush_interval``); ``text`` is what was posted in the
    current ``epoch``. Every post returns a future; ``sent`` is the last one, awaited before the
    stream returns, so every frame is out before the result is saved and the pane pushed.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.outcome = Outcome()
        self.publisher = streaming.publisher()
        self.flush_every: float = settings.ARENA_STREAM_FLUSH_SECONDS
        self.frame_base = {"r": job.public_id, "side": job.side}
        self.epoch = streaming.epoch_of(job.attempt)
        self.pending = ""
        self.text = ""
        self.last_flush = 0.0  # the first delta goes out at once
        self.last_stop_check = 0.0  # the first flush checks at once, then twice a second
        self.stop_check: asyncio.Future[bool] | None = None
        self.sent: asyncio.Future[bool] | None = None

    async def run(self) -> Outcome:
        """Stream the attempt to its end, a provider error or a stop; raises only for a bug
        (the caller turns that into a failed response)."""
        self.post_reset()
        streaming.stream_started()
        try:
            client = await client_for(self.job.endpoint)
            # aclosing: a stop breaks out of the stream; the provider call must end at once.
            async with aclosing(client.stream(self.job.messages, self.job.params)) as events:
                async for event in events:
                    if not self.on_event(event):
                        break
            self.flush(time.monotonic())
        except ProviderError as exc:
            self.outcome.error = exc
        finally:
            streaming.stream_finished()
            if self.sent is not None:
                await asyncio.shield(self.sent)
        return self.finish()

    def on_event(self, event: StreamEvent) -> bool:
        """Handle one provider event; False when the voter asked to stop (end the stream)."""
        if isinstance(event, TextDelta):
            self.on_delta(event.text, time.monotonic())
            return not self.stop_requested()
        if isinstance(event, Restart):
            self.on_restart()
        elif isinstance(event, Completion):
            self.outcome.completion = event
        return True

    def on_delta(self, text: str, now: float) -> None:
        """Queue ``text``; flush when the interval since the last flush has passed (always for
        the stream's first delta: time to first token is what a voter feels)."""
        self.pending += text
        if now - self.last_flush >= streaming.flush_interval(self.flush_every):
            self.flush(now)

    def on_restart(self) -> None:
        """The provider retried after tokens had streamed: discard the text, never duplicate
        it; a new epoch starts and the page clears the pane."""
        self.outcome.restarts += 1
        self.pending, self.text = "", ""
        self.epoch = streaming.epoch_of(self.job.attempt, self.outcome.restarts)
        self.post_reset()

    def post_reset(self) -> None:
        """Start the current epoch: the partial text becomes empty, the page clears the pane."""
        self.sent = self.publisher.post(
            self.job.battle_public_id,
            {"k": "reset", **self.frame_base, "epoch": self.epoch},
            response_public_id=self.job.public_id,
            epoch=self.epoch,
        )

    def flush(self, now: float) -> None:
        """Post the pending text as one delta frame (the publisher appends it to the partial text
        before it publishes the frame: a page that reconnects gets a snapshot at least this
        fresh). A stop is a human's click: reading its flag in the same round trip twice a
        second is enough."""
        self.last_flush = now
        if not self.pending:
            return
        offset = len(self.text)
        self.text += self.pending
        check = now - self.last_stop_check >= STOP_CHECK_SECONDS
        frame = {"k": "delta", **self.frame_base, "epoch": self.epoch, "offset": offset}
        self.sent = self.publisher.post(
            self.job.battle_public_id,
            {**frame, "text": self.pending},
            response_public_id=self.job.public_id,
            text=self.pending,
            stop_attempt=self.job.attempt if check else None,
        )
        if check:
            self.last_stop_check, self.stop_check = now, self.sent
        self.pending = ""

    def stop_requested(self) -> bool:
        """Whether the last stop check's round trip found the voter's stop flag (a check still
        in flight counts as not yet)."""
        check = self.stop_check
        if check is None or not check.done():
            return False
        if check.result():
            self.outcome.stopped = True
            return True
        self.stop_check = None
        return False

    def finish(self) -> Outcome:
        """The outcome with the text to save: the provider's whole text when it completed, else
        what was posted (a stop keeps the text so far)."""
        completion = self.outcome.completion
        self.outcome.text = completion.text if completion is not None else self.text
        return self.outcome


def response_stream(job: Job) -> Outcome:
    """Run the attempt's :class:`ResponseStream` on the producer loop from synchronous code.

    Never raises: a broken stream (a bug, or the loop's time limit) ends as a failed response
    the voter can regenerate, not as a response left streaming."""

    async def run() -> Outcome:
        return await ResponseStream(job).run()

    try:
        return streaming.run(run(), timeout=job.endpoint.timeouts.total_s + 60)
    except Exception:  # noqa: BLE001 - a broken stream must end in a failed response
        log.exception("generation crashed", extra={"response": job.public_id})
        return Outcome(error=UpstreamError("The model could not answer; try regenerating."))


# --- finish -----------------------------------------------------------------------------------


def answer_fields(text: str, words: list[str]) -> dict[str, Any]:
    """The columns of a done or stopped answer computed from its text: style features and
    whether it leaks a model's identity."""
    features = style_features(text)
    return {
        "text": text,
        "length": features.length,
        "header_count": features.header_count,
        "list_count": features.list_count,
        "bold_count": features.bold_count,
        "leaks_identity": find_identity_leak(text, words) is not None,
    }


def _result_fields(job: Job, outcome: Outcome) -> dict[str, Any]:
    fields: dict[str, Any] = {"completed_at": timezone.now(), "text": outcome.text}
    if outcome.error is not None:
        fields.update(
            state=Response.State.FAILED,
            error_kind=type(outcome.error).__name__,
            error_message=outcome.error.user_message[:500],
            provider_attempts=outcome.error.attempts,
        )
        return fields
    fields.update(
        state=Response.State.STOPPED if outcome.stopped else Response.State.DONE,
        **answer_fields(outcome.text, job.leak_words),
    )
    completion = outcome.completion
    if completion is None:
        fields["finish_reason"] = "stopped"
        return fields
    fields.update(
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        finish_reason=(completion.finish_reason or "")[:32],
        latency_ms=int(completion.latency_s * 1000) if completion.latency_s is not None else None,
        ttft_ms=int(completion.ttft_s * 1000) if completion.ttft_s is not None else None,
        provider_attempts=completion.attempts,
    )
    return fields


def response_finish(*, job: Job, outcome: Outcome, lease: leases.Lease | None = None) -> bool:
    """Save the attempt's result; True when it was saved (then its pane is worth pushing).

    The UPDATE is conditional on ``attempt`` and the streaming state, the same condition as the
    sweeper's and a stop's: a regenerate that started meanwhile, or a sweep that ended the
    attempt after its lease lapsed, wins and this result is dropped. A ``lease`` another holder
    took is not written at all. A failure with the provider's breaker open marks the provider
    in the cache so every web process's pair sampler skips its models for a while."""
    if outcome.error is not None and circuit_open(job.provider):
        mark_circuit_open(job.provider, CIRCUIT_MARK_SECONDS)
    saved = (lease is None or not lease.lost) and Response.objects.filter(
        pk=job.response_pk, attempt=job.attempt, state=Response.State.STREAMING
    ).update(**_result_fields(job, outcome))
    GENERATIONS.labels(provider=job.provider, outcome=outcome.kind).inc()
    if outcome.completion is not None and outcome.completion.ttft_s is not None:
        TTFT.labels(provider=job.provider).observe(outcome.completion.ttft_s)
    return bool(saved)
