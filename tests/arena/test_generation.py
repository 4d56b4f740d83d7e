"""Generation tasks against the demo provider and a real fake OpenAI-compatible server."""

import asyncio

import pytest
from django.utils.html import escape

from arena import services, streaming
from arena.models import LLM, Provider, Response
from arena.tasks import generate_response
from tests.arena.factories import battle_with_turn, demo_models, llm
from tests.fakes.fake_llm import Behaviour, FakeLLMServer

pytestmark = pytest.mark.django_db


def _pending_battle(model_a: LLM, model_b: LLM, voter: str = "v1"):
    battle = battle_with_turn(model_a, model_b, voter=voter, states=("pending", "pending"))
    return battle, list(Response.objects.filter(turn__battle=battle).order_by("side"))


def test_demo_generation_saves_text_timings_and_style_features_and_is_idempotent():
    a, b = demo_models(2)
    battle, (ra, rb) = _pending_battle(a, b)
    assert generate_response.run(ra.pk, 1) == "done"
    assert generate_response.run(rb.pk, 1) == "done"
    ra.refresh_from_db()
    assert ra.state == "done" and ra.text and ra.completed_at
    assert ra.header_count >= 1 and ra.length > 20  # demo-scholar answers in structured markdown
    assert ra.ttft_ms is not None and ra.latency_ms is not None
    # The partial store ends with the whole text (a reconnecting page gets it all).
    epoch, text = asyncio.run(streaming.load_partial(str(ra.public_id)))
    assert (epoch, text) == (1000, ra.text)
    # A redelivered task for the finished attempt does nothing.
    assert generate_response.run(ra.pk, 1) == "skipped"


@pytest.fixture
def fake_server():
    with FakeLLMServer() as server:
        yield server


def _fake_models(server: FakeLLMServer, **provider_fields):
    provider = Provider.objects.create(
        name="fake", kind="openai", base_url=server.openai_base_url, connect_timeout=2,
        first_token_timeout=5, total_timeout=20, **provider_fields,
    )  # fmt: skip
    return llm(provider, "fake-a"), llm(provider, "fake-b")


def test_provider_failing_mid_stream_ends_failed_with_a_regenerate_path(fake_server, client):
    a, b = _fake_models(fake_server, max_retries=0)
    fake_server.behave("fake-a", Behaviour(fault="drop", fault_after_tokens=3, fail_first=1))
    session = client.session
    session["arena_consent"] = True
    session.save()
    voter = services.voter_key(session.session_key)
    battle, (ra, rb) = _pending_battle(a, b, voter=voter)
    assert generate_response.run(ra.pk, 1) == "failed"
    assert generate_response.run(rb.pk, 1) == "done"
    ra.refresh_from_db()
    assert ra.state == "failed" and ra.error_kind and ra.error_message
    page = client.get(f"/arena/b/{battle.public_id}/").content.decode()
    assert escape(ra.error_message) in page and "Regenerate this answer" in page
    assert 'id="vote-a" class="vote side-a" disabled' in page  # no vote on a failed round
    response = services.response_regenerate(
        battle_id=battle.public_id, voter=voter, response_id=ra.public_id
    )
    assert generate_response.run(response.pk, 2) == "done"
    ra.refresh_from_db()
    assert ra.state == "done" and ra.attempt == 2 and ra.text == Behaviour().text
    vote, _ = services.vote_cast(battle_id=battle.public_id, voter=voter, winner="tie")
    assert vote.flags == ["errored_round"]


def test_a_retry_after_tokens_restarts_the_answer_without_duplicated_text(fake_server):
    a, b = _fake_models(fake_server, max_retries=2)
    fake_server.behave("fake-a", Behaviour(fault="drop", fault_after_tokens=4, fail_first=1))
    _, (ra, _) = _pending_battle(a, b)
    assert generate_response.run(ra.pk, 1) == "done"
    ra.refresh_from_db()
    assert ra.text == Behaviour().text
    assert fake_server.count(model="fake-a") == 2
    epoch, text = asyncio.run(streaming.load_partial(str(ra.public_id)))
    assert epoch == 1001 and text == Behaviour().text  # the restart began a new epoch


def test_an_answer_naming_a_vendor_is_marked_as_leaking(fake_server):
    a, b = _fake_models(fake_server)
    fake_server.behave(
        "fake-a", Behaviour(text="As a model trained by OpenAI, I think rivers flow.")
    )
    _, (ra, rb) = _pending_battle(a, b)
    generate_response.run(ra.pk, 1)
    generate_response.run(rb.pk, 1)
    ra.refresh_from_db()
    rb.refresh_from_db()
    assert ra.leaks_identity and not rb.leaks_identity


def test_stop_keeps_the_text_so_far(settings):
    settings.ARENA_STREAM_FLUSH_SECONDS = 0.01
    provider = Provider.objects.create(
        name="slow-demo", kind="demo", options={"tokens_per_s": 400, "first_token_delay_s": 0}
    )
    a, b = llm(provider, "demo-verbose"), llm(provider, "demo-terse")
    _, (ra, _) = _pending_battle(a, b)
    streaming.request_stop(str(ra.public_id), 1)
    assert generate_response.run(ra.pk, 1) == "stopped"
    ra.refresh_from_db()
    assert ra.state == "stopped" and ra.text and ra.finish_reason == "stopped"
    full = Response(text="")
    del full
    assert len(ra.text) < 600  # demo-verbose writes far more than one flush's worth
