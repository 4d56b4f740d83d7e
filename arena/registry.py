"""Writes to the model registry: apply a declarative config, seed the demo models.

Services in the sense of STYLE.md (one function per use case, own transaction); the arena's
battle services live in ``arena/services.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from arena.model_config import ModelConfig, ProviderConfig, RegistryConfig
from arena.models import LLM, Provider
from arena.providers import DEMO_MODELS

DEMO_PROVIDER = "demo"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _provider_fields(cfg: ProviderConfig) -> dict[str, object]:
    return {
        "kind": cfg.kind,
        "base_url": cfg.base_url,
        "api_key_env": cfg.api_key_env or "",
        "connect_timeout": cfg.timeouts.connect_s,
        "first_token_timeout": cfg.timeouts.first_token_s,
        "total_timeout": cfg.timeouts.total_s,
        "max_concurrency": cfg.max_concurrency,
        "requests_per_minute": cfg.rpm,
        "max_retries": cfg.max_retries,
        "extra_headers": dict(cfg.extra_headers),
        "options": dict(cfg.options),
    }


def _model_fields(cfg: ModelConfig, provider: Provider) -> dict[str, object]:
    return {
        "display_name": cfg.display_name,
        "organisation": cfg.organisation,
        "license": cfg.license,
        "knowledge_cutoff": cfg.knowledge_cutoff,
        "provider": provider,
        "provider_model_id": cfg.provider_model_id,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "system_prompt": cfg.system_prompt,
        "extra_body": dict(cfg.extra_body),
        "active": cfg.active,
        "sampling_weight": cfg.sampling_weight,
        "use_in_arena": cfg.use_in_arena,
        "use_in_annotation": cfg.use_in_annotation,
    }


def _upsert(
    model: type,
    lookup: dict[str, object],
    values: dict[str, object],
    label: str,
    report: ApplyReport,
) -> object:
    obj = model.objects.select_for_update().filter(**lookup).first()
    if obj is None:
        obj = model.objects.create(**lookup, **values)
        report.created.append(label)
        return obj
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if changed:
        for name in changed:
            setattr(obj, name, values[name])
        obj.full_clean()
        obj.save(update_fields=changed)
        report.updated.append(label)
    else:
        report.unchanged.append(label)
    return obj


def registry_apply(*, config: RegistryConfig) -> ApplyReport:
    """Create or update providers and models from a parsed config, all or nothing.

    Idempotent: applying the same config twice changes nothing the second time. Models and
    providers absent from the config are left alone (deactivate them in the admin).
    """
    report = ApplyReport()
    with transaction.atomic():
        providers: dict[str, Provider] = {}
        for pcfg in config.providers:
            providers[pcfg.name] = _upsert(  # type: ignore[assignment]
                Provider,
                {"name": pcfg.name},
                _provider_fields(pcfg),
                f"provider {pcfg.name}",
                report,
            )
        for mcfg in config.models:
            provider = providers.get(mcfg.provider) or Provider.objects.get(name=mcfg.provider)
            _upsert(
                LLM,
                {"slug": mcfg.slug},
                _model_fields(mcfg, provider),
                f"model {mcfg.slug}",
                report,
            )
    return report


def demo_seed(*, tokens_per_s: float = 40.0, first_token_delay_s: float = 0.4) -> ApplyReport:
    """Register the built-in demo provider and its synthetic models (demo only, no network)."""
    provider = ProviderConfig(
        name=DEMO_PROVIDER,
        kind="demo",
        options={"tokens_per_s": tokens_per_s, "first_token_delay_s": first_token_delay_s},
    )
    models = tuple(
        ModelConfig(
            slug=spec.slug,
            display_name=spec.display_name,
            provider=DEMO_PROVIDER,
            provider_model_id=spec.slug,
            organisation=spec.organisation,
            license="demo",
            knowledge_cutoff="n/a",
        )
        for spec in DEMO_MODELS
    )
    return registry_apply(config=RegistryConfig(providers=(provider,), models=models))
