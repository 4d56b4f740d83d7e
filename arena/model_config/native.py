"""Our format (YAML or JSON): ``{"providers": [...], "models": [...]}``; see ``models.example.yaml``."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from arena.model_config.schema import ModelConfig, ProviderConfig, RegistryConfig
from arena.model_config.validation import (
    CUTOFF,
    ENV_NAME,
    SECRET_LOOKING,
    SLUG,
    Checker,
    ConfigError,
    Problem,
)
from arena.providers.base import PROVIDER_KINDS, Timeouts

PROVIDER_FIELDS = {
    "name",
    "kind",
    "base_url",
    "api_key_env",
    "timeouts",
    "max_concurrency",
    "rpm",
    "max_retries",
    "extra_headers",
    "options",
}
MODEL_FIELDS = {
    "slug",
    "display_name",
    "organisation",
    "license",
    "knowledge_cutoff",
    "provider",
    "provider_model_id",
    "temperature",
    "top_p",
    "max_tokens",
    "system_prompt",
    "extra_body",
    "active",
    "sampling_weight",
    "use_in_arena",
    "use_in_annotation",
}
TIMEOUT_FIELDS = ("connect_s", "first_token_s", "total_s")


def _entries(data: Mapping[str, Any], key: str, problems: list[Problem]) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        problems.append(Problem(key, "", "must be a list"))
        return []
    return value


def parse_native(data: Mapping[str, Any]) -> RegistryConfig:
    """Parse our format; raises ConfigError listing every problem (entry and field)."""
    problems: list[Problem] = []
    for key in data:
        if key not in ("providers", "models"):
            problems.append(Problem("config", str(key), "unknown top-level key"))
    providers: dict[str, ProviderConfig] = {}
    for i, raw in enumerate(_entries(data, "providers", problems)):
        provider = _parse_provider(i, raw, problems)
        if provider is None:
            continue
        if provider.name in providers:
            problems.append(Problem(f"providers[{i}]", "name", f"duplicate {provider.name!r}"))
        providers[provider.name] = provider
    models: dict[str, ModelConfig] = {}
    for i, raw in enumerate(_entries(data, "models", problems)):
        model = _parse_model(i, raw, providers, problems)
        if model is None:
            continue
        if model.slug in models:
            problems.append(Problem(f"models[{i}]", "slug", f"duplicate {model.slug!r}"))
        models[model.slug] = model
    if problems:
        raise ConfigError(problems)
    return RegistryConfig(tuple(providers.values()), tuple(models.values()))


def _parse_provider(i: int, raw: Any, problems: list[Problem]) -> ProviderConfig | None:
    entry = f"providers[{i}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(entry, "", "must be a mapping"))
        return None
    if isinstance(raw.get("name"), str):
        entry += f" ({raw['name']})"
    c = Checker(entry, raw, problems)
    c.unknown(PROVIDER_FIELDS)
    name = c.string("name", required=True)
    if name and not SLUG.match(name):
        c.bad("name", "use lower-case letters, digits, '.', '_' or '-'")
    kind = c.string("kind", required=True)
    if kind and kind not in PROVIDER_KINDS:
        c.bad("kind", f"must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    base_url = c.string("base_url")
    if kind in ("openai", "anthropic"):
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            c.bad("base_url", f"an http(s) URL is required for kind {kind}, got {base_url!r}")
    api_key_env = _api_key_env(c)
    timeouts = _timeouts(entry, c.mapping("timeouts"), problems)
    max_concurrency = c.number("max_concurrency", 1, integer=True) or 16
    rpm = c.number("rpm", 1, integer=True)
    max_retries = c.number("max_retries", 0, 10, integer=True)
    return ProviderConfig(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        base_url=base_url,
        api_key_env=api_key_env,
        timeouts=timeouts,
        max_concurrency=max_concurrency,
        rpm=rpm,
        max_retries=2 if max_retries is None else max_retries,
        extra_headers=c.mapping("extra_headers", str_values=True),
        options=c.mapping("options"),
    )


def _api_key_env(c: Checker) -> str | None:
    """The NAME of the key's variable; a value that looks like a key itself is refused."""
    api_key_env = c.string("api_key_env") or None
    if api_key_env and not ENV_NAME.match(api_key_env):
        if SECRET_LOOKING.search(api_key_env):
            c.bad("api_key_env", "looks like a key itself; give the variable's NAME instead")
        else:
            c.bad("api_key_env", f"must be an environment variable name, got {api_key_env!r}")
    return api_key_env


def _timeouts(entry: str, raw: dict[str, Any], problems: list[Problem]) -> Timeouts:
    """A provider's ``timeouts`` mapping; the defaults for the fields it leaves out."""
    if not raw:
        return Timeouts()
    t = Checker(entry, raw, problems, prefix="timeouts.")
    for key in raw:
        if key not in TIMEOUT_FIELDS:
            t.bad(str(key), "unknown field (connect_s, first_token_s, total_s)")
    values = {key: t.number(key, 0.001) for key in TIMEOUT_FIELDS if key in raw}
    return Timeouts(**{k: float(v) for k, v in values.items() if v is not None})


def _parse_model(
    i: int, raw: Any, providers: Mapping[str, ProviderConfig], problems: list[Problem]
) -> ModelConfig | None:
    entry = f"models[{i}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(entry, "", "must be a mapping"))
        return None
    if isinstance(raw.get("slug"), str):
        entry += f" ({raw['slug']})"
    c = Checker(entry, raw, problems)
    c.unknown(MODEL_FIELDS)
    slug = c.string("slug", required=True)
    if slug and not SLUG.match(slug):
        c.bad("slug", "use lower-case letters, digits, '.', '_' or '-' (at most 100)")
    provider = c.string("provider", required=True)
    if provider and provider not in providers:
        c.bad("provider", f"no provider named {provider!r}")
    if isinstance(raw.get("knowledge_cutoff"), datetime.date):  # YAML reads 2024-06-01 as a date
        raw = {**raw, "knowledge_cutoff": raw["knowledge_cutoff"].isoformat()}
        c.data = raw
    cutoff = c.string("knowledge_cutoff")
    if cutoff and not CUTOFF.match(str(cutoff)):
        c.bad("knowledge_cutoff", f"use YYYY-MM or YYYY-MM-DD, got {cutoff!r}")
    sampling_weight = c.number("sampling_weight", 0)
    return ModelConfig(
        slug=slug,
        display_name=c.string("display_name", default=slug) or slug,
        provider=provider,
        provider_model_id=c.string("provider_model_id", default=slug) or slug,
        organisation=c.string("organisation"),
        license=c.string("license"),
        knowledge_cutoff=cutoff,
        temperature=c.number("temperature", 0, 2),
        top_p=c.number("top_p", 0, 1),
        max_tokens=c.number("max_tokens", 1, integer=True),
        system_prompt=c.string("system_prompt"),
        extra_body=c.mapping("extra_body"),
        active=c.boolean("active", True),
        sampling_weight=1.0 if sampling_weight is None else float(sampling_weight),
        use_in_arena=c.boolean("use_in_arena", True),
        use_in_annotation=c.boolean("use_in_annotation", True),
    )
