"""Leases on generation: the sweeper ends the responses of a dead worker, hands over pending
attempts nobody took, and every late write of a swept attempt changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape

from arena import generation, recovery, services, streaming
from arena.fragments import render_live_update
from arena.models import Battle, Response
from arena.tasks import generate_response, sweep_responses
from core import leases
from core.background import periodic_jobs
from tests.arena.factories import battle_with_turn, demo_models
from tests.fakes.fake_llm import Behaviour, FakeLLMServer
from tests.harness import wait_until

pytestmark = pytest.mark.django_db

LEASE = 0.2  # seconds: a dead worker's lease lapses within the test


@pytest.fixture
def short_leases(settings: object) -> Iterator[None]:
    settings.ARENA_LEASE_SECONDS = LEASE  # type: ignore[attr-defined]
    # A lease store younger than a lease period is not judged (it may have just restarted).
    wait_until(lambda: leases.store_age() >= LEASE, timeout=5, what="a settled lease store")
    yield


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Battles whose panes were pushed to their pages."""
    calls: list[str] = []
    monkeypatch.setattr("arena.fragments.push_live_update", calls.append)
    return calls


def _battle(voter: str = "v1") -> tuple[Battle, Response, Response]:
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter=voter, states=("pending", "pending"))
    ra, rb = Response.objects.filter(turn__battle=battle).order_by("side")
    return battle, ra, rb


def _queued_long_ago(response: Response) -> None:
    Response.objects.filter(pk=response.pk).update(queued_at=timezone.now() - timedelta(hours=1))


def _streaming_on_a_dead_worker(response: Response, text: str = "Rivers form when") -> None:
    """The state a SIGKILLed worker leaves: the attempt claimed, some text published, and a
    lease nobody renews any more (then lapsed)."""
    lease = leases.acquire(
        generation.attempt_lease_key(response.pk, response.attempt), ttl=LEASE, keep=False
    )
    assert lease is not None
    assert generation.response_claim(response_pk=response.pk, attempt=response.attempt)
    epoch = streaming.epoch_of(response.attempt)
    streaming.store().set(streaming._partial_key(str(response.public_id)), f"{epoch}\n{text}")
    _queued_long_ago(response)
    wait_until(
        lambda: not generation.attempt_alive(response.pk, response.attempt),
        timeout=5,
        what="the dead worker's lease to lapse",
    )


@pytest.fixture
def live_lease() -> Iterator[list[leases.Lease]]:
    """Leases a live worker holds (renewed by this process's keeper), released afterwards."""
    held: list[leases.Lease] = []
    yield held
    for lease in held:
        leases.release(lease)


def _streaming_on_a_live_worker(response: Response, held: list[leases.Lease]) -> None:
    lease = generation.response_lease(response_pk=response.pk, attempt=response.attempt)
    assert lease is not None
    held.append(lease)
    assert generation.response_claim(response_pk=response.pk, attempt=response.attempt)
    _queued_long_ago(response)


def test_the_sweep_ends_a_dead_workers_response_as_failed_and_pushes_its_pane(short_leases, pushed):
    battle, ra, rb = _battle()
    assert generate_response.run(rb.pk, 1) == "done"
    _streaming_on_a_dead_worker(ra)
    assert sweep_responses.run() == {"lost": 1, "requeued": 0, "waited": False}
    ra.refresh_from_db()
    assert ra.state == "failed" and ra.error_kind == recovery.WORKER_LOST == "worker_lost"
    assert ra.error_message == recovery.WORKER_LOST_MESSAGE and ra.completed_at
    assert ra.text == "Rivers form when"  # what the page was shown, kept for the record
    assert pushed == [str(battle.public_id)]
    # A slow (not dead) worker finds the stop flag at its next check and ends its stream.
    assert streaming.store().get(streaming._stop_key(str(ra.public_id), 1)) == "1"
    # The pushed fragments show the failure with a way out, as for any failed answer.
    html = render_live_update(str(battle.public_id))
    assert escape(recovery.WORKER_LOST_MESSAGE) in html and "Regenerate this answer" in html
    # A second sweep finds nothing left to do.
    assert sweep_responses.run() == {"lost": 0, "requeued": 0, "waited": False}


def test_a_response_whose_worker_renews_its_lease_is_not_swept(short_leases, pushed, live_lease):
    _, ra, _ = _battle()
    _streaming_on_a_live_worker(ra, live_lease)
    renewals = leases.keeper().renewals
    # Several lease periods pass: the keeper renews it, and every sweep leaves it alone.
    wait_until(lambda: leases.keeper().renewals >= renewals + 3, timeout=5, what="3 renewals")
    assert recovery.responses_sweep().lost == []
    ra.refresh_from_db()
    assert ra.state == "streaming" and pushed == []


def test_a_lease_store_younger_than_a_lease_period_is_not_judged(settings, pushed):
    settings.ARENA_LEASE_SECONDS = 10**9
    _, ra, _ = _battle()
    assert generation.response_claim(response_pk=ra.pk, attempt=1)  # streaming, no lease
    _queued_long_ago(ra)
    assert recovery.responses_sweep().waited
    ra.refresh_from_db()
    assert ra.state == "streaming"


def test_a_swept_attempts_late_result_changes_nothing(short_leases, pushed):
    _, ra, _ = _battle()
    lease = leases.acquire(generation.attempt_lease_key(ra.pk, 1), ttl=LEASE, keep=False)
    job = generation.response_claim(response_pk=ra.pk, attempt=1)
    assert job is not None and lease is not None
    _queued_long_ago(ra)
    wait_until(lambda: not generation.attempt_alive(ra.pk, 1), timeout=5, what="a lapsed lease")
    assert recovery.responses_sweep().lost == [str(ra.public_id)]
    late = generation.Outcome(text="A late but complete answer.", stopped=True)
    assert generation.response_finish(job=job, outcome=late, lease=lease) is False
    ra.refresh_from_db()
    assert (ra.state, ra.error_kind, ra.text) == ("failed", "worker_lost", "")


def test_a_result_whose_lease_another_holder_took_is_not_written(short_leases):
    _, ra, _ = _battle()
    job = generation.response_claim(response_pk=ra.pk, attempt=1)
    assert job is not None
    lease = leases.Lease(key=generation.attempt_lease_key(ra.pk, 1), token="t", ttl=LEASE)
    lease.lost = True
    outcome = generation.Outcome(text="An answer.", stopped=True)
    assert generation.response_finish(job=job, outcome=outcome, lease=lease) is False
    ra.refresh_from_db()
    assert ra.state == "streaming"


def test_the_sweep_and_the_regenerate_free_the_battle_for_a_vote(short_leases, pushed):
    battle, ra, rb = _battle()
    assert generate_response.run(rb.pk, 1) == "done"
    _streaming_on_a_dead_worker(ra)
    with pytest.raises(services.Conflict):
        services.vote_cast(battle_id=battle.public_id, voter="v1", winner="a")
    recovery.responses_sweep()
    regenerated = services.response_regenerate(
        battle_id=battle.public_id, voter="v1", response_id=ra.public_id
    )
    assert (regenerated.attempt, regenerated.state) == (2, "pending")
    assert regenerated.queued_at > timezone.now() - timedelta(minutes=1)
    assert generate_response.run(ra.pk, 2) == "done"
    vote, created = services.vote_cast(battle_id=battle.public_id, voter="v1", winner="a")
    assert created and vote.flags == ["errored_round"]


def test_stop_on_an_orphan_ends_it_at_once_with_the_text_shown(
    short_leases, pushed, django_capture_on_commit_callbacks
):
    battle, ra, rb = _battle()
    assert generate_response.run(rb.pk, 1) == "done"
    _streaming_on_a_dead_worker(ra, text="## Rivers\n- rain **falls**")
    with django_capture_on_commit_callbacks(execute=True):
        stopped = services.response_stop(
            battle_id=battle.public_id, voter="v1", response_id=ra.public_id
        )
    assert stopped.state == "stopped" and stopped.finish_reason == "stopped"
    assert stopped.text == "## Rivers\n- rain **falls**"
    assert (stopped.header_count, stopped.list_count, stopped.bold_count) == (1, 1, 1)
    assert pushed == [str(battle.public_id)]
    # A stopped answer can be voted on, as after any stop.
    _, created = services.vote_cast(battle_id=battle.public_id, voter="v1", winner="b")
    assert created


def test_stop_on_a_live_worker_only_asks_it_to_stop(
    short_leases, pushed, live_lease, django_capture_on_commit_callbacks
):
    battle, ra, _ = _battle()
    _streaming_on_a_live_worker(ra, live_lease)
    with django_capture_on_commit_callbacks(execute=True):
        answer = services.response_stop(
            battle_id=battle.public_id, voter="v1", response_id=ra.public_id
        )
    assert answer.state == "streaming" and pushed == []  # the worker saves and pushes it
    assert streaming.store().get(streaming._stop_key(str(ra.public_id), 1)) == "1"


def test_a_redelivered_task_exits_without_touching_anything(short_leases, pushed, live_lease):
    _, ra, rb = _battle()
    # Another delivery of the attempt holds its lease: this one exits at once.
    _streaming_on_a_live_worker(ra, live_lease)
    before = Response.objects.filter(pk=ra.pk).values().get()
    assert generate_response.run(ra.pk, 1) == "skipped"
    assert Response.objects.filter(pk=ra.pk).values().get() == before
    assert generation.attempt_alive(ra.pk, 1)  # the holder's lease is untouched
    # The broker redelivers the task of a worker that died, after the sweep ended its attempt.
    _streaming_on_a_dead_worker(rb)
    recovery.responses_sweep()
    before = Response.objects.filter(pk=rb.pk).values().get()
    assert generate_response.run(rb.pk, 1) == "skipped"
    assert Response.objects.filter(pk=rb.pk).values().get() == before
    assert not generation.attempt_alive(rb.pk, 1)  # and it let go of the lease it took


def test_a_pending_attempt_nobody_took_is_handed_over_once_per_lease_period(
    short_leases, monkeypatch
):
    handed: list[tuple[object, ...]] = []
    monkeypatch.setattr(recovery, "enqueue", lambda *args: handed.append(args))
    _, ra, rb = _battle()
    _queued_long_ago(ra)  # its task was reserved by a worker that died
    sweep = recovery.responses_sweep()
    assert sweep.requeued == [str(ra.public_id)] and sweep.lost == []
    assert handed == [("arena.generate_response", ra.pk, 1)]
    assert recovery.responses_sweep().requeued == []  # queued again just now
    # The task handed over runs it; the original delivery, if it ever comes, does nothing.
    assert generate_response.run(ra.pk, 1) == "done"
    assert generate_response.run(ra.pk, 1) == "skipped"


def test_the_sweep_is_a_periodic_job(settings):
    jobs = {job.task_name: job.every for job in periodic_jobs()}
    assert jobs["arena.sweep_responses"] == settings.ARENA_LEASE_SWEEP_SECONDS


def test_a_failed_answer_stores_how_many_provider_attempts_it_made():
    from arena.models import Provider
    from tests.arena.factories import llm

    with FakeLLMServer() as server:
        server.default = Behaviour(fault="status", status=503, retry_after="0")
        provider = Provider.objects.create(
            name="down", kind="openai", base_url=server.openai_base_url, max_retries=2,
            connect_timeout=2, first_token_timeout=5, total_timeout=20,
        )  # fmt: skip
        a, b = llm(provider, "down-a"), llm(provider, "down-b")
        battle = battle_with_turn(a, b, voter="v1", states=("pending", "pending"))
        ra = Response.objects.get(turn__battle=battle, side="a")
        assert generate_response.run(ra.pk, 1) == "failed"
        assert server.count(model="down-a") == 3
    ra.refresh_from_db()
    assert (ra.state, ra.provider_attempts) == ("failed", 3)
