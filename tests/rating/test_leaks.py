"""A model whose answers name it: its votes are excluded, it is not over-sampled, operators are
told, and (when they turn it on) it leaves anonymous battles. The vote admin filters by flag."""

import random
import uuid
from collections import Counter

import pytest
from django.core.cache import cache

from arena import sampling
from arena.models import Battle, Response, Vote
from rating import services
from tests.rating import factories as f

MODELS, BATTLES_PER_ROUND, ROUNDS = 5, 10, 12


def _leaking_battle(a, b, leaker, rng: random.Random) -> Battle:
    """A voted anonymous battle; the leaker's answer names it, which flags the vote."""
    bt = f.battle(a, b, voter=f"v-{uuid.uuid4().hex[:8]}")
    leaks = leaker.pk in (a.pk, b.pk)
    if leaks:
        side = "a" if a.pk == leaker.pk else "b"
        Response.objects.filter(turn__battle=bt, side=side).update(leaks_identity=True)
    f.vote(bt, rng.choice(["a", "b"]), flags=["identity_leak"] if leaks else [])
    return bt


def _run_arena(leaker_index: int = 0, seed: int = 7) -> tuple[list, Counter]:
    """Battles drawn by the sampler, with the full recompute (sampling weights) between
    rounds, as in production. Returns the models and how often each was drawn."""
    models = [f.llm(f"m{k}") for k in range(MODELS)]
    leaker = models[leaker_index]
    rng = random.Random(seed)
    drawn: Counter = Counter()
    for _ in range(ROUNDS):
        services.leaderboard_recompute_full(detect_anomalies=False)
        sampling.forget_registry()
        for _ in range(BATTLES_PER_ROUND):
            a, b = sampling.pick_pair(rng=rng)
            drawn.update((a.pk, b.pk))
            _leaking_battle(a, b, leaker, rng)
    return models, drawn


@pytest.mark.django_db
def test_a_leaking_model_is_drawn_about_as_often_as_the_others():
    """Its votes never count; sampling counts the battles it was shown in, so it is not chased
    as "under-sampled" (before: 16 of 18 battles)."""
    models, drawn = _run_arena()
    battles = ROUNDS * BATTLES_PER_ROUND
    share = drawn[models[0].pk] / battles
    uniform = 2 / MODELS  # each battle has two of the five models
    assert share <= uniform + 0.1, (share, drawn)
    assert Vote.objects.filter(flags=["identity_leak"]).count() == drawn[models[0].pk]


@pytest.mark.django_db
def test_leak_rates_name_the_leaking_model_only():
    models, drawn = _run_arena()
    rates = {r.slug: r for r in sampling.identity_leak_rates()}
    leak = rates["m0"]
    assert leak.battles == drawn[models[0].pk] and leak.leaked == leak.battles
    assert leak.rate == 1.0 and leak.lower > sampling.LEAK_RATE_LIMIT and leak.leaking
    assert all(rates[m.slug].leaked == 0 and not rates[m.slug].leaking for m in models[1:])
    cache.delete(sampling.LEAK_CACHE_KEY)
    assert [r.slug for r in sampling.leaking_models()] == ["m0"]


def test_wilson_bound_needs_enough_battles():
    assert not sampling.LeakRate(1, "x", 5, 5).leaking  # under LEAK_MIN_BATTLES
    assert sampling.LeakRate(1, "x", 10, 5).leaking  # 50%: lower bound 24%
    assert not sampling.LeakRate(1, "x", 40, 6).leaking  # 15%: lower bound 7%, could be 10%
    assert sampling.LeakRate(1, "x", 400, 60).leaking  # 15% of 400: lower bound 12%
    assert sampling.LeakRate(1, "x", 0, 0).lower == 0.0


@pytest.mark.django_db
def test_operators_can_take_a_leaking_model_out_of_anonymous_battles(settings):
    models, _ = _run_arena()
    cache.delete(sampling.LEAK_CACHE_KEY)
    sampling.forget_registry()
    assert sampling.excluded_for_leaks() == set()  # off by default
    rng = random.Random(1)
    assert any(models[0] in sampling.pick_pair(rng=rng) for _ in range(50))
    settings.ARENA_EXCLUDE_LEAKING_MODELS = True
    sampling.forget_registry()
    assert sampling.excluded_for_leaks() == {models[0].pk}
    assert not any(models[0] in sampling.pick_pair(rng=rng) for _ in range(200))


@pytest.mark.django_db
def test_staff_see_the_leaking_model_on_the_leaderboard_page(client, admin_client):
    _run_arena()
    cache.delete(sampling.LEAK_CACHE_KEY)
    assert "m0</strong> named itself in" in admin_client.get("/leaderboard/").content.decode()
    assert "named itself" not in client.get("/leaderboard/").content.decode()


@pytest.mark.django_db
def test_vote_admin_filters_by_flag_and_warns_about_leaking_models(admin_client):
    a, b, c = f.llm("alpha"), f.llm("beta"), f.llm("gamma")
    f.votes(a, b, "a", 4)
    f.votes(a, c, "b", 3, flags=["identity_leak"])
    f.votes(b, c, "a", 2, flags=["position_locked"])
    f.votes(b, a, "a", 1, flags=["identity_leak", "errored_round"])
    for bt in Battle.objects.filter(vote__flags__icontains="identity_leak"):
        Response.objects.filter(turn__battle=bt, side="a").update(leaks_identity=True)
    cache.delete(sampling.LEAK_CACHE_KEY)

    def listed(query: str) -> int:
        page = admin_client.get(f"/admin/arena/vote/{query}")
        assert page.status_code == 200
        return page.context["cl"].result_count

    assert listed("") == 10
    assert listed("?flag=identity_leak") == 4
    assert listed("?flag=position_locked") == 2
    assert listed("?flag=errored_round") == 1
    assert listed("?flag=moderated") == 0
    assert listed("?flag=any") == 6 and listed("?flag=none") == 4
    page = admin_client.get("/admin/arena/vote/").content.decode()
    assert "position locked" in page  # the filter lists every flag
    # alpha leaked in 3 of its 8 battles, 10 needed to judge; beta's in 1 of 7: neither yet.
    assert "named itself" not in page
    f.votes(a, c, "b", 8, flags=["identity_leak"])
    for bt in Battle.objects.filter(vote__flags__icontains="identity_leak"):
        Response.objects.filter(turn__battle=bt, side="a").update(leaks_identity=True)
    cache.delete(sampling.LEAK_CACHE_KEY)
    page = admin_client.get("/admin/arena/vote/").content.decode()
    assert "Identity leak: alpha named itself in 11 of its last 16 anonymous battles (69%)" in page
