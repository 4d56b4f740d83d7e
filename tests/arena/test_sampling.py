import random
from collections import Counter

import pytest

from arena import sampling
from arena.models import PairSamplingWeight
from tests.arena.factories import demo_models, demo_provider, llm

pytestmark = pytest.mark.django_db


def test_never_a_model_against_itself_and_sides_are_random():
    demo_models(3)
    rng = random.Random(1)
    sides = Counter()
    for _ in range(400):
        a, b = sampling.pick_pair(rng=rng, pair_weights={})
        assert a.pk != b.pk
        sides[a.slug] += 1
    assert len(sides) == 3 and min(sides.values()) > 60


def test_inactive_zero_weight_and_circuit_open_models_are_excluded():
    models = demo_models(4)
    models[0].active = False
    models[0].save()
    models[1].sampling_weight = 0
    models[1].save()
    other = llm(demo_provider("broken"), "demo-offtopic")
    sampling.mark_circuit_open("broken", 30)
    rng = random.Random(2)
    seen = {m.slug for _ in range(100) for m in sampling.pick_pair(rng=rng, pair_weights={})}
    assert seen == {models[2].slug, models[3].slug}
    assert other.slug not in seen


def test_fewer_than_two_models_is_a_clear_error():
    demo_models(1)
    with pytest.raises(sampling.NoModelsAvailable) as excinfo:
        sampling.pick_pair(pair_weights={})
    assert excinfo.value.code == "no_models"


def test_operator_weights_and_active_sampling_weights_shift_the_draws():
    a, b, c = demo_models(3)
    rng = random.Random(3)
    counts = Counter()
    PairSamplingWeight.objects.create(
        model_a=a if a.pk < b.pk else b, model_b=b if a.pk < b.pk else a, weight=1.0
    )
    for _ in range(3000):
        x, y = sampling.pick_pair(rng=rng)
        counts[frozenset((x.slug, y.slug))] += 1
    # Active weight on (a, b): that pair gets (1 + 3) parts against 1 part each for the others.
    assert counts[frozenset((a.slug, b.slug))] / 3000 == pytest.approx(4 / 6, abs=0.04)
