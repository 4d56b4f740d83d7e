"""Pair sampling for anonymous battles.

A pair (i, j) is drawn with probability proportional to ``w_i * w_j * (1 + mix * n * a_ij)``,
where ``w`` are the operators' sampling weights and ``a_ij`` the active-sampling weight the rating
recompute writes into ``PairSamplingWeight`` (normalised to sum to 1 over pairs; ``n`` pairs, so
a uniform ``a`` leaves the operators' weights unchanged). Never a model against itself; inactive
models and models whose provider's circuit breaker is open are excluded; sides are random.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

from arena.models import LLM, PairSamplingWeight
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
_registry_cache: tuple[float, list[LLM], dict[tuple[int, int], float]] | None = None


def _registry() -> tuple[list[LLM], dict[tuple[int, int], float]]:
    """Arena models and active-sampling weights, re-read at most every few seconds per process
    (every battle start needs them; they change only on an operator's edit or a recompute)."""
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
        _registry_cache = (now, models, weights)
    return _registry_cache[1], _registry_cache[2]


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
) -> tuple[LLM, LLM]:
    """Two different models, sides shuffled. Raises NoModelsAvailable with fewer than two."""
    rng = rng or random.SystemRandom()
    if models is None or pair_weights is None:
        cached_models, cached_weights = _registry()
        models = cached_models if models is None else models
        pair_weights = cached_weights if pair_weights is None else pair_weights
    if available is provider_available:
        available = _available_now({m.provider.name for m in models})
    models = [m for m in models if m.sampling_weight > 0 and available(m.provider.name)]
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
