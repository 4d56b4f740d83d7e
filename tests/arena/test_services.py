"""Arena services: start, continue, regenerate, stop, vote (one per battle), limits, moderation."""

import threading

import pytest
from django.db import connection

from arena import services, streaming
from arena.models import Battle, Response, Vote, VoteCount
from core.errors import ApplicationError, Conflict, NotFound, RateLimited
from tests.arena.factories import battle_with_turn, demo_models, voter

pytestmark = pytest.mark.django_db


def test_battle_start_creates_turn_and_two_pending_responses_and_enqueues_after_commit(
    django_capture_on_commit_callbacks,
):
    demo_models(3)
    v = voter()
    with django_capture_on_commit_callbacks() as callbacks:
        battle = services.battle_start(voter=v, ip="10.0.0.1", prompt="  Write a python function  ")
    assert battle.model_a_id != battle.model_b_id
    turn = battle.turns.get()
    assert turn.prompt == "Write a python function" and turn.has_code and turn.language == "en"
    assert sorted(turn.responses.values_list("side", "state")) == [
        ("a", "pending"),
        ("b", "pending"),
    ]
    assert len(callbacks) == 2  # one generation task per response, dispatched only after commit
    battle.refresh_from_db()
    assert {"all", "coding", "lang:en"} <= set(battle.categories)
    assert battle.ip_hash and "10.0.0.1" not in battle.ip_hash


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ("", "invalid_prompt"),
        ("   ", "invalid_prompt"),
        ("x" * 12_001, "invalid_prompt"),
        (["list"], "invalid_prompt"),
    ],
)
def test_bad_prompts_are_refused_and_change_nothing(prompt, code):
    demo_models(2)
    with pytest.raises(ApplicationError) as excinfo:
        services.battle_start(voter=voter(), prompt=prompt)
    assert excinfo.value.code == code
    assert not Battle.objects.exists()


def test_blocklisted_prompt_is_refused_before_any_model_is_called(settings):
    settings.ARENA_BLOCKLIST = ["forbidden phrase"]
    demo_models(2)
    with pytest.raises(ApplicationError) as excinfo:
        services.battle_start(voter=voter(), prompt="Tell me the FORBIDDEN phrase please")
    assert excinfo.value.code == "moderated"
    assert not Battle.objects.exists() and not Response.objects.exists()


def test_typing_a_vendor_name_is_allowed():
    demo_models(2)
    battle = services.battle_start(voter=voter(), prompt="Are you better than ChatGPT or Claude?")
    assert battle.pk


def test_battle_rate_limit_per_session(settings):
    settings.ARENA_BATTLES_PER_MINUTE = 2
    demo_models(2)
    v = voter()
    services.battle_start(voter=v, prompt="one")
    services.battle_start(voter=v, prompt="two")
    with pytest.raises(RateLimited) as excinfo:
        services.battle_start(voter=v, prompt="three")
    assert excinfo.value.extra["retry_after"] >= 1
    assert Battle.objects.count() == 2
    services.battle_start(voter=voter(), prompt="another voter is not limited")


def test_a_new_turn_counts_against_the_same_per_session_limit_as_a_new_battle(settings):
    settings.ARENA_BATTLES_PER_MINUTE = 2
    demo_models(2)
    v = voter()
    battle = services.battle_start(voter=v, prompt="one")
    Response.objects.filter(turn__battle=battle).update(state="done")
    services.turn_add(battle_id=battle.public_id, voter=v, prompt="two")
    Response.objects.filter(turn__battle=battle).update(state="done")
    with pytest.raises(RateLimited):
        services.turn_add(battle_id=battle.public_id, voter=v, prompt="three")
    assert battle.turns.count() == 2


def test_named_mode_uses_the_chosen_models_and_refuses_the_same_twice():
    a, b, _ = demo_models(3)
    battle = services.battle_start(
        voter=voter(), prompt="hi", mode="named", model_a=a.slug, model_b=b.slug
    )
    assert (battle.model_a, battle.model_b, battle.mode) == (a, b, "named")
    with pytest.raises(ApplicationError):
        services.battle_start(
            voter=voter(), prompt="hi", mode="named", model_a=a.slug, model_b=a.slug
        )


def test_outsider_cannot_touch_a_battle():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="owner")
    for call in (
        lambda: services.battle_for_voter(public_id=battle.public_id, voter="outsider"),
        lambda: services.vote_cast(battle_id=battle.public_id, voter="outsider", winner="a"),
        lambda: services.turn_add(battle_id=battle.public_id, voter="outsider", prompt="x"),
        lambda: services.battle_for_voter(public_id="not-a-uuid", voter="owner"),
    ):
        with pytest.raises(NotFound):
            call()
    assert not Vote.objects.exists()


def test_vote_is_refused_while_an_answer_is_still_streaming():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1", states=("done", "streaming"))
    with pytest.raises(Conflict) as excinfo:
        services.vote_cast(battle_id=battle.public_id, voter="v1", winner="a")
    assert excinfo.value.code == "responses_pending"
    assert not Vote.objects.exists()


def test_vote_cast_stores_one_vote_counts_it_and_a_replay_gets_it_back():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1")
    vote, created = services.vote_cast(battle_id=battle.public_id, voter="v1", winner="b")
    assert created and vote.winner == "b" and vote.turns == 1 and vote.flags == []
    again, created_again = services.vote_cast(
        battle_id=str(battle.public_id), voter="v1", winner="a"
    )
    assert (again.pk, again.winner, created_again) == (vote.pk, "b", False)
    assert Vote.objects.count() == 1
    battle.refresh_from_db()
    assert battle.state == "voted"
    assert VoteCount.objects.get(category="all", model_a=a, model_b=b).outcome == "b"


def test_bad_winner_is_refused():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1")
    with pytest.raises(ApplicationError) as excinfo:
        services.vote_cast(battle_id=battle.public_id, voter="v1", winner="model_a")
    assert excinfo.value.code == "invalid_winner"
    assert not Vote.objects.exists()


def test_leaked_identity_flags_the_vote_and_keeps_it_out_of_counts():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1")
    Response.objects.filter(turn__battle=battle, side="a").update(leaks_identity=True)
    vote, _ = services.vote_cast(battle_id=battle.public_id, voter="v1", winner="a")
    assert vote.flags == ["identity_leak"]
    assert not VoteCount.objects.exists()


def test_turn_add_continues_only_when_both_answers_are_done_and_up_to_the_limit(
    settings, django_capture_on_commit_callbacks
):
    settings.ARENA_MAX_TURNS = 2
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1", states=("done", "streaming"))
    with pytest.raises(Conflict):
        services.turn_add(battle_id=battle.public_id, voter="v1", prompt="next")
    Response.objects.filter(turn__battle=battle).update(state="done")
    with django_capture_on_commit_callbacks() as callbacks:
        turn = services.turn_add(battle_id=battle.public_id, voter="v1", prompt="next")
    assert turn.index == 1 and len(callbacks) == 2
    battle.refresh_from_db()
    assert "multi_turn" in battle.categories
    Response.objects.filter(turn=turn).update(state="done")
    with pytest.raises(Conflict) as excinfo:
        services.turn_add(battle_id=battle.public_id, voter="v1", prompt="third")
    assert excinfo.value.code == "too_many_turns"


def test_regenerate_only_a_failed_answer_and_it_starts_a_new_attempt(
    django_capture_on_commit_callbacks,
):
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1", states=("done", "failed"))
    done, failed = Response.objects.filter(turn__battle=battle).order_by("side")
    with pytest.raises(Conflict):
        services.response_regenerate(
            battle_id=battle.public_id, voter="v1", response_id=done.public_id
        )
    with django_capture_on_commit_callbacks() as callbacks:
        response = services.response_regenerate(
            battle_id=battle.public_id, voter="v1", response_id=failed.public_id
        )
    assert (response.attempt, response.state, response.text) == (2, "pending", "")
    assert len(callbacks) == 1


def test_stop_a_pending_answer_ends_it_and_sets_the_flag():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1", states=("pending", "streaming"))
    pending, running = Response.objects.filter(turn__battle=battle).order_by("side")
    assert (
        services.response_stop(
            battle_id=battle.public_id, voter="v1", response_id=pending.public_id
        ).state
        == "stopped"
    )
    services.response_stop(battle_id=battle.public_id, voter="v1", response_id=running.public_id)
    assert streaming.store().get(streaming._stop_key(str(running.public_id), 1)) == "1"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_threads_voting_at_once_store_exactly_one_vote():
    a, b = demo_models(2)
    battles = [battle_with_turn(a, b, voter=f"v{i}") for i in range(10)]
    results: list = []
    errors: list = []

    def cast(battle, winner, barrier):
        try:
            barrier.wait()
            results.append(
                services.vote_cast(battle_id=battle.public_id, voter=battle.voter, winner=winner)
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    for battle in battles:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=cast, args=(battle, w, barrier)) for w in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert Vote.objects.count() == 10
    assert sum(created for _, created in results) == 10
    for battle in battles:
        pair = [vote for vote, _ in results if vote.battle_id == battle.pk]
        assert len({v.pk for v in pair}) == 1 and len({v.winner for v in pair}) == 1
    assert sum(VoteCount.objects.filter(category="all").values_list("count", flat=True)) == 10


def test_unreachable_moderation_endpoint_fails_closed(settings):
    from tests.harness import free_port

    settings.ARENA_MODERATION_URL = f"http://127.0.0.1:{free_port()}/v1/moderations"
    demo_models(2)
    with pytest.raises(ApplicationError) as excinfo:
        services.battle_start(voter=voter(), prompt="hello")
    assert excinfo.value.code == "moderated"
    assert not Battle.objects.exists()


def test_moderation_endpoint_flag_refuses_the_prompt(settings):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Moderation(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            flagged = "bad" in body["input"]
            payload = json.dumps({"results": [{"flagged": flagged}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Moderation)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.ARENA_MODERATION_URL = f"http://127.0.0.1:{server.server_port}/v1/moderations"
        demo_models(2)
        with pytest.raises(ApplicationError):
            services.battle_start(voter=voter(), prompt="something bad")
        assert services.battle_start(voter=voter(), prompt="something fine").pk
        assert Battle.objects.count() == 1
    finally:
        server.shutdown()


def test_vote_keeps_the_conversation_style_features_per_side():
    a, b = demo_models(2)
    battle = battle_with_turn(a, b, voter="v1")
    Response.objects.filter(turn__battle=battle, side="a").update(
        length=120, header_count=2, list_count=5, bold_count=1
    )
    Response.objects.filter(turn__battle=battle, side="b").update(length=30)
    vote, _ = services.vote_cast(battle_id=battle.public_id, voter="v1", winner="a")
    vote.refresh_from_db()
    assert (vote.a_length, vote.a_header_count, vote.a_list_count, vote.a_bold_count) == (
        120,
        2,
        5,
        1,
    )
    assert (vote.b_length, vote.b_header_count) == (30, 0)
