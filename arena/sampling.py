"""Pair sampling for anonymous battles, and the identity-leak rates that may take a model out.

A pair (i, j) is drawn with probability proportional to ``w_i * w_j * (1 + mix * n * a_ij)``,
where ``w`` are the operators' sampling weights and ``a_ij`` the active-sampling weight the rating
recompute writes into ``PairSamplingWeight`` (normalised to sum to 1 over pairs; ``n`` pairs, so
a uniform ``a`` leaves the operators' weights unchanged). Never a model against itself; inactive
models and models whose provider's circuit breaker is open are excluded; sides are random.

Identity leaks. A vote on a battle where an answer named its model or maker is flagged and not
counted. ``identity_leak_rates`` measures, per model, the share of its recent anonymous battles
in which its own answer leaked; a model is *leaking* when that share is above
``LEAK_RATE_LIMIT`` beyond reasonable doubt (the lower end of the 95% Wilson interval is above
it, from ``LEAK_MIN_BATTLES`` battles on). Operators see leaking models in the vote admin and on
the leaderboard page; with ``settings.ARENA_EXCLUDE_LEAKING_MODELS`` on (off by default) they are
also left out of anonymous battles. Their rate is then measured on older and older battles until
those leave the window, and the model comes back on probation.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from arena.models import LLM, Battle, PairSamplingWeight, Response
from arena.providers import is_open as circuit_open_here
from core.errors import ApplicationError

CIRCUIT_KEY = "arena:circuit-open:{}"


def mark_circuit_open(provider_name: str, seconds: float) -> None:
    """Tell every process that ``provider_name`` is failing fast (generation tasks call this)."""
    cache.set(CIRCUIT_KEY.format(provider_name), 1, timeout=max(1, int(seconds)))


def provider_available(name: str) -> bool:
    return not (circuit_open_here(name) or cache.get(CIRCUIT_KEY.format(name)))


def _available_now(names: set[str]) -> Callable[[str], bool]:
    """Circuit state of several providers in one cache round trip."""
    marked = cache.get_many([CIRCUIT_KEY.format(n) for n in names])
    return lambda name: not (circuit_open_here(name) or CIRCUIT_KEY.format(name) in marked)


class NoModelsAvailable(ApplicationError):
    code = "no_models"
    status = 503


def eligible_models() -> list[LLM]:
    models = list(LLM.objects.for_arena().select_related("provider"))
    return [m for m in models if provider_available(m.provider.name)]


REGISTRY_TTL = 5.0
_registry_cache: tuple[float, list[LLM], dict[tuple[int, int], float], set[int]] | None = None


def _registry() -> tuple[list[LLM], dict[tuple[int, int], float], set[int]]:
    """Arena models, active-sampling weights and the models left out for leaking their
    identity, re-read at most every few seconds per process (every battle start needs them;
    they change only on an operator's edit, a recompute or a minute's new battles)."""
    global _registry_cache
    now = time.monotonic()
    if _registry_cache is None or now - _registry_cache[0] > REGISTRY_TTL:
        models = list(LLM.objects.for_arena().select_related("provider"))
        weights = {
            (min(a, b), max(a, b)): w
            for a, b, w in PairSamplingWeight.objects.values_list(
                "model_a_id", "model_b_id", "weight"
            )
        }
        _registry_cache = (now, models, weights, excluded_for_leaks())
    return _registry_cache[1], _registry_cache[2], _registry_cache[3]


def forget_registry() -> None:
    """Drop the cached registry (tests, and after an operator's change in this process)."""
    global _registry_cache
    _registry_cache = None


def pick_pair(
    models: list[LLM] | None = None,
    *,
    rng: random.Random | None = None,
    pair_weights: dict[tuple[int, int], float] | None = None,
    mix: float | None = None,
    available: Callable[[str], bool] = provider_available,
    exclude: set[int] | None = None,
) -> tuple[LLM, LLM]:
    """Two different models, sides shuffled. Raises NoModelsAvailable with fewer than two.

    ``exclude`` holds model pks left out; None means the models left out for leaking their
    identity (`excluded_for_leaks`: none unless the operator turned it on).
    """
    rng = rng or random.SystemRandom()
    if models is None or pair_weights is None:
        cached_models, cached_weights, cached_exclude = _registry()
        models = cached_models if models is None else models
        pair_weights = cached_weights if pair_weights is None else pair_weights
        exclude = cached_exclude if exclude is None else exclude
    elif exclude is None:
        exclude = excluded_for_leaks()
    if available is provider_available:
        available = _available_now({m.provider.name for m in models})
    models = [
        m
        for m in models
        if m.sampling_weight > 0 and m.pk not in exclude and available(m.provider.name)
    ]
    if len(models) < 2:
        raise NoModelsAvailable("Fewer than two models are available right now; try again soon.")
    mix = settings.ARENA_ACTIVE_SAMPLING_MIX if mix is None else mix
    n_pairs = len(models) * (len(models) - 1) // 2
    total_active = sum(pair_weights.values()) or 1.0
    pairs: list[tuple[LLM, LLM]] = []
    weights: list[float] = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            active = pair_weights.get((min(a.pk, b.pk), max(a.pk, b.pk)), 0.0) / total_active
            pairs.append((a, b))
            weights.append(a.sampling_weight * b.sampling_weight * (1 + mix * n_pairs * active))
    a, b = rng.choices(pairs, weights=weights, k=1)[0]
    return (a, b) if rng.random() < 0.5 else (b, a)


# --- identity leaks -----------------------------------------------------------------------------

LEAK_WINDOW = 2000  # the most recent anonymous battles whose answers are checked
LEAK_RATE_LIMIT = 0.10  # a model leaking in more than 10% of its battles wastes their votes
LEAK_MIN_BATTLES = 10  # fewer battles: a couple of "who made you?" prompts decide nothing
LEAK_Z = 1.96  # two-sided 95% Wilson interval
LEAK_CACHE_KEY = "arena:identity-leaks"
LEAK_CACHE_SECONDS = 60


@dataclass(frozen=True)
class LeakRate:
    """How often a model's own answers named it in its recent anonymous battles."""

    llm_id: int
    slug: str
    battles: int
    leaked: int

    @property
    def rate(self) -> float:
        return self.leaked / self.battles if self.battles else 0.0

    @property
    def lower(self) -> float:
        """Lower end of the 95% Wilson score interval of the leak rate."""
        n, z = self.battles, LEAK_Z
        if not n:
            return 0.0
        centre = self.rate + z * z / (2 * n)
        spread = z * math.sqrt(self.rate * (1 - self.rate) / n + z * z / (4 * n * n))
        return max(0.0, (centre - spread) / (1 + z * z / n))

    @property
    def leaking(self) -> bool:
        """Leaks in more than LEAK_RATE_LIMIT of its battles, beyond reasonable doubt."""
        return self.battles >= LEAK_MIN_BATTLES and self.lower > LEAK_RATE_LIMIT


def identity_leak_rates(*, window: int = LEAK_WINDOW) -> list[LeakRate]:
    """Leak rates of every model in the last ``window`` anonymous battles, highest first.

    A battle counts for a model when the model was in it (shown to a voter); it counts as
    leaked when one of the model's own answers named a model or maker (``leaks_identity``).
    Three small queries over the window (an index range on the battle id).
    """
    anonymous = Battle.objects.filter(mode=Battle.Mode.ANONYMOUS)
    edge = list(anonymous.order_by("-id").values_list("id", flat=True)[window - 1 : window])
    first = edge[0] if edge else 0
    shown: Counter[int] = Counter()
    sides: dict[int, tuple[int, int]] = {}
    for pk, a, b in anonymous.filter(id__gte=first).values_list("id", "model_a_id", "model_b_id"):
        shown.update((a, b))
        sides[pk] = (a, b)
    leaked_pairs = set(
        Response.objects.filter(
            leaks_identity=True,
            turn__battle__mode=Battle.Mode.ANONYMOUS,
            turn__battle_id__gte=first,
        )
        .values_list("turn__battle_id", "side")
        .distinct()
    )
    leaked = Counter(  # a battle started since the first read is left for the next one
        sides[pk][0 if side == "a" else 1] for pk, side in leaked_pairs if pk in sides
    )
    slugs = dict(LLM.objects.filter(pk__in=shown.keys()).values_list("pk", "slug"))
    rates = [LeakRate(pk, slugs.get(pk, str(pk)), n, leaked[pk]) for pk, n in shown.items()]
    return sorted(rates, key=lambda r: (-r.rate, r.slug))


def leaking_models() -> list[LeakRate]:
    """The leaking models (see `LeakRate.leaking`), from a shared cache refreshed every minute."""
    cached = cache.get(LEAK_CACHE_KEY)
    if cached is None:
        cached = [r for r in identity_leak_rates() if r.leaking]
        cache.set(LEAK_CACHE_KEY, cached, timeout=LEAK_CACHE_SECONDS)
    return cached


def excluded_for_leaks() -> set[int]:
    """Pks of the models left out of anonymous battles for leaking their identity: none unless
    ``settings.ARENA_EXCLUDE_LEAKING_MODELS`` is on."""
    if not getattr(settings, "ARENA_EXCLUDE_LEAKING_MODELS", False):
        return set()
    return {r.llm_id for r in leaking_models()}
