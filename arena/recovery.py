"""Responses whose worker is gone: the lease sweeper, and Stop on an orphan.

Every attempt being generated holds a lease (``arena.generation.response_lease``, the rules
are in ``core/leases.py``). :func:`responses_sweep` runs every ``ARENA_LEASE_SWEEP_SECONDS``
(beat in production, the embedded scheduler otherwise) and

- ends every *streaming* attempt without a live lease as failed (``worker_lost``), with a
  message that tells the voter to regenerate, and pushes the battle's panes to its pages (the
  same fragments as any finished response): the battle is free again, as after any failure;
- hands over again every *pending* attempt that no worker has taken within a lease period (a
  task reserved by a worker that died waits for the broker's visibility timeout, an hour,
  otherwise). Handing over twice is harmless: the second task cannot take the lease or the
  claim and exits.

A dead worker's responses therefore end within ``ARENA_LEASE_SECONDS`` (the lease lapses) plus
``ARENA_LEASE_SWEEP_SECONDS`` (the next sweep). Every write here is conditional on the attempt
and its state, like the generation task's own: whichever comes first wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.utils import timezone

from arena import generation, streaming
from arena.metrics import GENERATIONS
from arena.models import Battle, Response
from core import leases
from core.background import enqueue

log = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"
WORKER_LOST_MESSAGE = (
    "The server writing this answer stopped before it finished. Regenerate it to try again."
)


class Running(NamedTuple):
    """A response of some battle that is pending or streaming."""

    pk: int
    public_id: str
    attempt: int
    state: str
    queued_at: datetime
    battle_public_id: str


@dataclass
class Sweep:
    """What one sweep did: public ids of the responses ended and of those handed over again;
    ``waited`` when the lease store was younger than a lease period (nothing was judged)."""

    lost: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    waited: bool = False


def _running() -> list[Running]:
    rows = Response.objects.filter(
        state__in=[Response.State.PENDING, Response.State.STREAMING]
    ).values_list("pk", "public_id", "attempt", "state", "queued_at", "turn__battle__public_id")
    return [Running(pk, str(pid), n, state, at, str(bid)) for pk, pid, n, state, at, bid in rows]


def responses_sweep() -> Sweep:
    """End the streaming responses whose lease lapsed, hand over the pending ones nobody took."""
    ttl = settings.ARENA_LEASE_SECONDS
    if leases.store_age() < ttl:
        return Sweep(waited=True)
    running = _running()
    held = leases.alive([generation.attempt_lease_key(r.pk, r.attempt) for r in running])
    # A lease is taken before the row is claimed, so no lease of an attempt queued less than a
    # lease period ago can have lapsed yet: only older rows are judged.
    cutoff = timezone.now() - timedelta(seconds=ttl)
    orphans = [
        r for r, live in zip(running, held, strict=True) if not live and r.queued_at < cutoff
    ]
    sweep = Sweep()
    for response in orphans:
        if response.state == Response.State.STREAMING and response_abandon(response):
            sweep.lost.append(response.public_id)
        elif response.state == Response.State.PENDING and _requeue(response):
            sweep.requeued.append(response.public_id)
    if sweep.lost:
        lost = set(sweep.lost)
        push_panes({r.battle_public_id for r in orphans if r.public_id in lost})
    return sweep


def response_abandon(response: Running) -> bool:
    """End a streaming attempt whose worker is gone as failed (``worker_lost``), keeping the
    text its page was shown; False when it had ended meanwhile. A worker that was only slow
    finds the stop flag at its next check and ends its stream; its result is dropped."""
    text = streaming.saved_partial(response.public_id, response.attempt)
    ended = Response.objects.filter(
        pk=response.pk, attempt=response.attempt, state=Response.State.STREAMING
    ).update(
        state=Response.State.FAILED,
        text=text,
        error_kind=WORKER_LOST,
        error_message=WORKER_LOST_MESSAGE,
        completed_at=timezone.now(),
    )
    if not ended:
        return False
    streaming.request_stop(response.public_id, response.attempt)
    GENERATIONS.labels(provider=_provider_name(response.pk), outcome=WORKER_LOST).inc()
    log.warning(
        "response ended: its worker was lost",
        extra={"response": response.public_id, "attempt": response.attempt},
    )
    return True


def _provider_name(response_pk: int) -> str:
    side, a, b = Response.objects.values_list(
        "side", "turn__battle__model_a__provider__name", "turn__battle__model_b__provider__name"
    ).get(pk=response_pk)
    return str(a if side == "a" else b)


def _requeue(response: Running) -> bool:
    """Hand a pending attempt over again (once per lease period: the bump of ``queued_at`` is
    conditional on the value read, so concurrent sweeps hand it over once)."""
    moved = Response.objects.filter(
        pk=response.pk,
        attempt=response.attempt,
        state=Response.State.PENDING,
        queued_at=response.queued_at,
    ).update(queued_at=timezone.now())
    if moved:
        enqueue("arena.generate_response", response.pk, response.attempt)
    return bool(moved)


def response_stop_now(*, battle: Battle, response: Response) -> bool:
    """End ``response`` as stopped at once when no worker is generating it: it is still
    pending, or its worker is gone (no live lease). It keeps the text its page was shown.
    False when a live worker holds it: that worker stops at its next stop check and saves.

    The caller holds the response's row lock and has set the stop flag."""
    fields: dict[str, object] = {"state": Response.State.STOPPED, "completed_at": timezone.now()}
    if response.state == Response.State.STREAMING:
        if generation.attempt_alive(response.pk, response.attempt):
            return False
        text = streaming.saved_partial(str(response.public_id), response.attempt)
        words = generation.leak_words(battle.model_a, battle.model_b)
        fields.update(generation.answer_fields(text, words))
    fields["finish_reason"] = "stopped"
    return bool(
        Response.objects.filter(
            pk=response.pk, attempt=response.attempt, state=response.state
        ).update(**fields)
    )


def push_panes(battle_public_ids: set[str] | list[str]) -> None:
    """Push the finished panes, vote bar and composer of each battle to its pages; a failed
    push is logged (a page that reconnects, or is reloaded, shows the saved state)."""
    # Imported here: the fragments render through arena.selectors, which imports
    # arena.services, which imports this module.
    from arena.fragments import push_live_update

    for battle_public_id in battle_public_ids:
        try:
            push_live_update(battle_public_id)
        except Exception:  # noqa: BLE001 - the saved state is the truth; the push is a courtesy
            log.warning("panes not pushed", exc_info=True, extra={"battle": battle_public_id})
