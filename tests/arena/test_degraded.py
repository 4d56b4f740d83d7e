"""The arena when Redis or the broker is down: which way each rate limit fails, a battle start
that leaves nothing behind, pushes that are logged instead of raised, and the missing-key report.

Redis is "down" here for real: the settings point the rate limits or the channel layer at a
loopback port nothing listens on (connection refused), so the real clients fail as they do in
production. The broker is the one stub: Celery's publish raising kombu's OperationalError, as it
does when the broker does not answer (the fault test in tests/faults/ stops a real one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from io import StringIO

import pytest
from celery import current_app
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.management import call_command
from kombu.exceptions import OperationalError as BrokerError

from arena import limits, services, streaming
from arena.consumers import TRY_AGAIN_LATER
from arena.fragments import push_live_update
from arena.models import LLM, Battle, Provider, Response, Turn, Vote
from arena.tasks import generate_response
from config.asgi import router
from tests import harness
from tests.arena.factories import battle_with_turn, demo_models, voter
from tests.fakes.fake_llm import FakeLLMServer

DEAD_REDIS = f"redis://127.0.0.1:{harness.free_port()}/0"
UNAVAILABLE = "The arena is temporarily unavailable"


@pytest.fixture
def redis_down(settings, monkeypatch) -> Iterator[None]:
    """The rate limits' Redis refuses connections (the cache and sessions are left alone)."""
    monkeypatch.setattr(streaming, "_store", streaming._store)  # never cache a dead store
    settings.REDIS_URL = DEAD_REDIS
    yield


@pytest.fixture
def layer_down(settings) -> None:
    """The channel layer is Redis pub/sub on a port that refuses connections."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [DEAD_REDIS], "prefix": "pa-dead"},
        }
    }


def _nothing_stored() -> bool:
    return not (Battle.objects.exists() or Turn.objects.exists() or Response.objects.exists())


# --- the rate limits' directions --------------------------------------------------------------


def test_a_limit_fails_closed_by_default_and_open_when_asked(redis_down, caplog):
    limit = limits.Limit("battle", "someone", 5)
    with pytest.raises(limits.ArenaUnavailable) as excinfo:
        limits.check(limit)
    assert excinfo.value.status == 503 and excinfo.value.extra["retry_after"] >= 1
    caplog.set_level(logging.WARNING, logger="arena.limits")
    limits._last_warning = 0.0
    limits.check(limit, fail_open=True)  # allowed, uncounted
    assert "rate limits unavailable" in caplog.text


@pytest.mark.django_db
def test_battle_start_and_turn_add_fail_closed_and_create_nothing(redis_down):
    demo_models(2)
    with pytest.raises(services.ArenaUnavailable):
        services.battle_start(voter=voter(), ip="10.0.0.1", prompt="hello")
    assert _nothing_stored()
    a, b = LLM.objects.all()
    v = voter()
    battle = battle_with_turn(a, b, voter=v)
    with pytest.raises(services.ArenaUnavailable):
        services.turn_add(battle_id=battle.public_id, voter=v, prompt="and then?")
    assert battle.turns.count() == 1


@pytest.mark.django_db
def test_a_vote_is_stored_from_the_database_while_its_limit_is_down(redis_down, caplog):
    a, b = demo_models(2)
    v = voter()
    battle = battle_with_turn(a, b, voter=v)
    caplog.set_level(logging.WARNING, logger="arena.limits")
    limits._last_warning = 0.0
    vote, created = services.vote_cast(
        battle_id=battle.public_id, voter=v, winner="a", ip="1.2.3.4"
    )
    assert created and Vote.objects.get().winner == "a"
    assert "rate limits unavailable" in caplog.text  # allowed, and the log says it was uncounted


# --- the pages ----------------------------------------------------------------------------------


@pytest.fixture
def voter_client(client):
    session = client.session
    session["arena_consent"] = True
    session.save()
    client.voter = services.voter_key(session.session_key)
    return client


@pytest.mark.django_db
def test_starting_a_battle_while_redis_is_down_is_a_503_page_or_an_htmx_flash(
    redis_down, voter_client
):
    demo_models(2)
    page = voter_client.post("/arena/", {"prompt": "hello"})
    assert page.status_code == 503 and page["Retry-After"] == "5"
    assert UNAVAILABLE in page.content.decode()
    flash = voter_client.post("/arena/", {"prompt": "hello"}, HTTP_HX_REQUEST="true")
    assert flash.status_code == 200 and flash["HX-Retarget"] == "#flash"
    assert flash["Retry-After"] == "5"
    assert 'data-code="arena_unavailable"' in flash.content.decode()
    assert "temporarily unavailable" in flash.content.decode()
    assert _nothing_stored()


@pytest.mark.django_db
def test_voting_while_redis_is_down_reveals_the_models(redis_down, voter_client):
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter=voter_client.voter)
    fragment = voter_client.post(
        f"/arena/b/{battle.public_id}/vote/", {"winner": "b"}, HTTP_HX_REQUEST="true"
    )
    assert fragment.status_code == 200
    assert a.display_name in fragment.content.decode()
    assert Vote.objects.get(battle=battle).winner == "b"


# --- the broker ---------------------------------------------------------------------------------


@pytest.fixture
def broker_refuses_second_publish(settings, monkeypatch) -> list[tuple[int, int]]:
    """Celery mode whose first publish goes out and whose second finds the broker down."""
    settings.BACKGROUND_MODE = "celery"
    published: list[tuple[int, int]] = []

    def apply_async(args: tuple[int, int], kwargs: dict) -> None:
        if published:
            raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        published.append(tuple(args))

    task = current_app.tasks["arena.generate_response"]
    monkeypatch.setattr(task, "apply_async", apply_async)
    return published


@pytest.mark.django_db(transaction=True)
def test_a_battle_whose_generation_cannot_be_queued_is_undone(broker_refuses_second_publish):
    demo_models(2)
    with pytest.raises(services.ArenaUnavailable):
        services.battle_start(voter=voter(), prompt="hello")
    assert _nothing_stored()
    # The task that did get out finds its response gone and does nothing.
    ((response_pk, attempt),) = broker_refuses_second_publish
    assert generate_response.run(response_pk, attempt) == "skipped"


@pytest.mark.django_db(transaction=True)
def test_a_turn_whose_generation_cannot_be_queued_is_undone(broker_refuses_second_publish):
    a, b = demo_models(2)
    v = voter()
    battle = battle_with_turn(a, b, voter=v)
    with pytest.raises(services.ArenaUnavailable):
        services.turn_add(battle_id=battle.public_id, voter=v, prompt="Write a python function")
    assert list(battle.turns.values_list("index", flat=True)) == [0]
    assert Response.objects.count() == 2
    # The battle is tagged from its remaining turn again (the undone one was about code).
    assert "coding" not in Battle.objects.get().categories


# --- pushes to the channel layer ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_live_update_push_with_the_channel_layer_down_is_logged(layer_down, caplog):
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter=voter())
    caplog.set_level(logging.WARNING, logger="arena.fragments")
    push_live_update(str(battle.public_id))
    assert "live update not pushed" in caplog.text


@pytest.mark.django_db(transaction=True)
async def test_the_battle_socket_is_closed_try_again_later_when_the_layer_is_down(layer_down):
    from channels.db import database_sync_to_async

    @database_sync_to_async
    def setup() -> tuple[str, str]:
        session = SessionStore()
        session["arena_consent"] = True
        session.save()
        a, b = demo_models(2)
        battle = battle_with_turn(a, b, voter=services.voter_key(session.session_key))
        return str(battle.public_id), session.session_key

    battle_id, key = await setup()
    communicator = WebsocketCommunicator(
        router,
        f"/ws/arena/{battle_id}/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={key}".encode())],
    )
    connected, code = await communicator.connect(timeout=10)
    assert not connected and code == TRY_AGAIN_LATER


# --- a provider whose key variable is not set ----------------------------------------------------


@pytest.mark.django_db
def test_ping_models_reports_a_missing_key_and_does_not_call_the_model(monkeypatch):
    monkeypatch.delenv("PA_TEST_MISSING_KEY", raising=False)
    with FakeLLMServer() as server:
        provider = Provider.objects.create(
            name="keyless", kind="openai", base_url=server.openai_base_url,
            api_key_env="PA_TEST_MISSING_KEY",
        )  # fmt: skip
        LLM.objects.create(slug="k1", display_name="K1", provider=provider, provider_model_id="k1")
        open_provider = Provider.objects.create(
            name="open", kind="openai", base_url=server.openai_base_url
        )
        LLM.objects.create(
            slug="o1", display_name="O1", provider=open_provider, provider_model_id="o1"
        )
        out = StringIO()
        call_command("ping_models", stdout=out)
        assert server.count(model="k1") == 0 and server.count(model="o1") == 1
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    assert "key missing" in lines["k1"] and "PA_TEST_MISSING_KEY is not set" in lines["k1"]
    assert "ok" in lines["o1"]
    assert "1/2 answered; 1 not pinged: key variable not set" in out.getvalue()


@pytest.mark.django_db
def test_admin_lists_warn_about_a_missing_key_and_never_show_a_key(client, monkeypatch):
    secret = "sk-live-DEGRADED-1a2b3c4d"
    monkeypatch.delenv("PA_TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("PA_TEST_SET_KEY", secret)
    client.force_login(User.objects.create_superuser("ops", "ops@example.org", "pw-long-enough-1"))
    keyless = Provider.objects.create(
        name="keyless", kind="openai", api_key_env="PA_TEST_MISSING_KEY"
    )
    keyed = Provider.objects.create(name="keyed", kind="openai", api_key_env="PA_TEST_SET_KEY")
    LLM.objects.create(slug="k1", display_name="K1", provider=keyless, provider_model_id="k1")
    LLM.objects.create(slug="s1", display_name="S1", provider=keyed, provider_model_id="s1")
    for url in ("/admin/arena/provider/", "/admin/arena/llm/"):
        page = client.get(url).content.decode()
        assert "Provider keyless: the key variable PA_TEST_MISSING_KEY is not set" in page, url
        assert "Provider keyed" not in page, url
        assert 'class="column-key_status"' in page, url
        assert secret not in page, url
