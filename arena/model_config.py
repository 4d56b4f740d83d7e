"""Declarative model registry config: parse and validate, no Django.

Two input formats:

- ours (YAML or JSON): ``{"providers": [...], "models": [...]}``; see ``models.example.yaml``.
- FastChat's ``api_endpoint.json``: a dict keyed by model name with ``api_type``, ``api_base``,
  ``api_key``, ``recommended_config``... Providers are derived from the distinct API bases. A
  literal ``api_key`` is never kept: it becomes the name of an environment variable to set, with
  a warning.

:func:`load_config` / :func:`parse_config` return a :class:`RegistryConfig` or raise
:class:`ConfigError` listing every problem (entry and field). Secrets are resolved only by
:meth:`ProviderConfig.to_endpoint`, from the environment.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from arena.providers.base import PROVIDER_KINDS, Endpoint, GenerationParams, ProviderKind, Timeouts

logger = logging.getLogger("arena.model_config")

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_CUTOFF = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
_SECRET_LOOKING = re.compile(r"^(sk-|sk_|xai-|gsk_|AIza|ghp_)|^[A-Za-z0-9_\-]{32,}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config: where (``entry``), which ``field``, and what."""

    entry: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.entry}: {self.field}" if self.field else self.entry
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """The config is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in model config:\n" + "\n".join(f"- {p}" for p in problems)
        )


@dataclass(frozen=True)
class ProviderConfig:
    """A provider entry. ``api_key_env`` is the NAME of the variable holding the key."""

    name: str
    kind: ProviderKind
    base_url: str = ""
    api_key_env: str | None = None
    timeouts: Timeouts = Timeouts()
    max_concurrency: int = 16
    rpm: int | None = None
    max_retries: int = 2
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_endpoint(self, environ: Mapping[str, str] | None = None) -> Endpoint:
        """Build the Endpoint, reading the key from ``environ`` (default ``os.environ``).

        Raises ConfigError if ``api_key_env`` is set but the variable is missing or empty.
        """
        env = os.environ if environ is None else environ
        api_key = None
        if self.api_key_env:
            api_key = env.get(self.api_key_env) or None
            if api_key is None:
                raise ConfigError(
                    [
                        Problem(
                            f"provider {self.name!r}",
                            "api_key_env",
                            f"environment variable {self.api_key_env} is not set",
                        )
                    ]
                )
        return Endpoint(
            kind=self.kind,
            name=self.name,
            base_url=self.base_url,
            api_key=api_key,
            timeouts=self.timeouts,
            max_concurrency=self.max_concurrency,
            rpm=self.rpm,
            max_retries=self.max_retries,
            extra_headers=dict(self.extra_headers),
            options=dict(self.options),
        )


@dataclass(frozen=True)
class ModelConfig:
    """A model entry; ``provider`` names a ProviderConfig."""

    slug: str
    display_name: str
    provider: str
    provider_model_id: str
    organisation: str = ""
    license: str = ""
    knowledge_cutoff: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    system_prompt: str = ""
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    active: bool = True
    sampling_weight: float = 1.0
    use_in_arena: bool = True
    use_in_annotation: bool = True

    def generation_params(self, *, seed: int | None = None) -> GenerationParams:
        return GenerationParams(
            model=self.provider_model_id,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            system_prompt=self.system_prompt or None,
            extra_body=dict(self.extra_body),
            seed=seed,
        )


@dataclass(frozen=True)
class RegistryConfig:
    """A parsed config; ``warnings`` are things worth telling the operator."""

    providers: tuple[ProviderConfig, ...]
    models: tuple[ModelConfig, ...]
    warnings: tuple[str, ...] = ()

    def provider(self, name: str) -> ProviderConfig:
        return next(p for p in self.providers if p.name == name)


# -- entry points ----------------------------------------------------------------------------


def load_config(path: str | Path, *, skip_unsupported: bool = False) -> RegistryConfig:
    """Read ``path`` (.yaml/.yml or .json, ours or FastChat's) and parse it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot parse: {exc}")]) from None
    return parse_config(data, skip_unsupported=skip_unsupported)


def parse_config(data: Any, *, skip_unsupported: bool = False) -> RegistryConfig:
    """Parse already-decoded data; detects FastChat's format by its shape."""
    if isinstance(data, Mapping) and ("providers" in data or "models" in data):
        return _parse_native(data)
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values()):
        return parse_fastchat(data, skip_unsupported=skip_unsupported)
    raise ConfigError(
        [Problem("config", "", "expected {providers: [...], models: [...]} or a FastChat dict")]
    )


# -- our format ------------------------------------------------------------------------------

_PROVIDER_FIELDS = {
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
_MODEL_FIELDS = {
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


class _Checker:
    """Collects problems for one entry while reading its fields."""

    def __init__(
        self, entry: str, data: Mapping[str, Any], problems: list[Problem], prefix: str = ""
    ) -> None:
        self.entry, self.data, self.problems, self.prefix = entry, data, problems, prefix

    def bad(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.entry, self.prefix + name, message))

    def unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key == "api_key":
                self.bad(key, "never put keys in the config; name a variable with api_key_env")
            elif key not in allowed:
                self.bad(str(key), "unknown field")

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            if required:
                self.bad(name, "required")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.bad(name, f"must be a non-empty string, got {value!r}")
            return default
        return value

    def number(
        self, name: str, lo: float, hi: float | None = None, *, integer: bool = False
    ) -> Any:
        value = self.data.get(name)
        if value is None:
            return None
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or value < lo or (hi is not None and value > hi):
            kind = "an integer" if integer else "a number"
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            self.bad(name, f"must be {kind} {bound}, got {value!r}")
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.bad(name, f"must be true or false, got {value!r}")
            return default
        return value

    def mapping(self, name: str, *, str_values: bool = False) -> dict[str, Any]:
        value = self.data.get(name) or {}
        if not isinstance(value, Mapping) or (
            str_values and not all(isinstance(v, str) for v in value.values())
        ):
            self.bad(name, "must be a mapping" + (" of strings" if str_values else ""))
            return {}
        return dict(value)


def _entries(data: Mapping[str, Any], key: str, problems: list[Problem]) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        problems.append(Problem(key, "", "must be a list"))
        return []
    return value


def _parse_native(data: Mapping[str, Any]) -> RegistryConfig:
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
    c = _Checker(entry, raw, problems)
    c.unknown(_PROVIDER_FIELDS)
    name = c.string("name", required=True)
    if name and not _SLUG.match(name):
        c.bad("name", "use lower-case letters, digits, '.', '_' or '-'")
    kind = c.string("kind", required=True)
    if kind and kind not in PROVIDER_KINDS:
        c.bad("kind", f"must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    base_url = c.string("base_url")
    if kind in ("openai", "anthropic"):
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            c.bad("base_url", f"an http(s) URL is required for kind {kind}, got {base_url!r}")
    api_key_env = c.string("api_key_env") or None
    if api_key_env and not _ENV_NAME.match(api_key_env):
        if _SECRET_LOOKING.search(api_key_env):
            c.bad("api_key_env", "looks like a key itself; give the variable's NAME instead")
        else:
            c.bad("api_key_env", f"must be an environment variable name, got {api_key_env!r}")
    timeouts = Timeouts()
    raw_timeouts = c.mapping("timeouts")
    if raw_timeouts:
        t = _Checker(entry, raw_timeouts, problems, prefix="timeouts.")
        for key in raw_timeouts:
            if key not in ("connect_s", "first_token_s", "total_s"):
                t.bad(str(key), "unknown field (connect_s, first_token_s, total_s)")
        values = {
            key: t.number(key, 0.001)
            for key in ("connect_s", "first_token_s", "total_s")
            if key in raw_timeouts
        }
        timeouts = Timeouts(**{k: float(v) for k, v in values.items() if v is not None})
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


def _parse_model(
    i: int, raw: Any, providers: Mapping[str, ProviderConfig], problems: list[Problem]
) -> ModelConfig | None:
    entry = f"models[{i}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(entry, "", "must be a mapping"))
        return None
    if isinstance(raw.get("slug"), str):
        entry += f" ({raw['slug']})"
    c = _Checker(entry, raw, problems)
    c.unknown(_MODEL_FIELDS)
    slug = c.string("slug", required=True)
    if slug and not _SLUG.match(slug):
        c.bad("slug", "use lower-case letters, digits, '.', '_' or '-' (at most 100)")
    provider = c.string("provider", required=True)
    if provider and provider not in providers:
        c.bad("provider", f"no provider named {provider!r}")
    if isinstance(raw.get("knowledge_cutoff"), datetime.date):  # YAML reads 2024-06-01 as a date
        raw = {**raw, "knowledge_cutoff": raw["knowledge_cutoff"].isoformat()}
        c.data = raw
    cutoff = c.string("knowledge_cutoff")
    if cutoff and not _CUTOFF.match(str(cutoff)):
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


# -- FastChat's api_endpoint.json ------------------------------------------------------------

_FASTCHAT_KINDS: dict[str, ProviderKind] = {
    "openai": "openai",
    "openai_no_stream": "openai",
    "openai_o1": "openai",
    "mistral": "openai",
    "nvidia": "openai",
    "anthropic": "anthropic",
    "anthropic_message": "anthropic",
    "anthropic_o1": "anthropic",
}
_FASTCHAT_DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
_FASTCHAT_FIELDS = {
    "model_name",
    "api_type",
    "api_base",
    "api_key",
    "anony_only",
    "recommended_config",
    "custom_system_prompt",
    "text-arena",
    "vision-arena",
}


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug[:100] or "model"


def parse_fastchat(data: Mapping[str, Any], *, skip_unsupported: bool = False) -> RegistryConfig:
    """Map FastChat's registry to ours. See the module docstring for the key rule."""
    problems: list[Problem] = []
    warnings: list[str] = []
    providers: dict[tuple[str, str], ProviderConfig] = {}
    models: list[ModelConfig] = []
    for model_name, raw in data.items():
        entry = f"model {model_name!r}"
        c = _Checker(entry, raw, problems)
        for key in raw:
            if key not in _FASTCHAT_FIELDS:
                warnings.append(f"{entry}: field {key!r} ignored")
        api_type = c.string("api_type", required=True)
        kind = _FASTCHAT_KINDS.get(api_type)
        if kind is None:
            if api_type and skip_unsupported:
                warnings.append(f"{entry}: api_type {api_type!r} not supported; skipped")
            elif api_type:
                c.bad(
                    "api_type",
                    f"not supported: {api_type!r} (supported: {sorted(_FASTCHAT_KINDS)})",
                )
            continue
        base_url = c.string("api_base") or _FASTCHAT_DEFAULT_BASES[kind]
        if kind == "anthropic":
            base_url = re.sub(r"/v1/?$", "", base_url)
        host = urlparse(base_url).netloc
        if not host:
            c.bad("api_base", f"not a URL: {base_url!r}")
            continue
        provider = providers.get((kind, base_url))
        if provider is None:
            name = _slugify(host.split(":")[0])
            if any(p.name == name for p in providers.values()):
                name = f"{name}-{len(providers) + 1}"
            api_key_env = None
            api_key = raw.get("api_key")
            if isinstance(api_key, str) and api_key.strip():
                ref = api_key.strip().lstrip("$").strip("{}")
                if _ENV_NAME.match(ref) and api_key.strip().startswith("$"):
                    api_key_env = ref
                else:
                    api_key_env = re.sub(r"[^A-Z0-9]+", "_", name.upper()) + "_API_KEY"
                    warnings.append(
                        f"{entry}: literal api_key not stored; set environment variable "
                        f"{api_key_env} instead (and rotate that key if the file was shared)"
                    )
            provider = ProviderConfig(
                name=name, kind=kind, base_url=base_url, api_key_env=api_key_env
            )
            providers[(kind, base_url)] = provider
        elif isinstance(raw.get("api_key"), str) and raw["api_key"] and provider.api_key_env:
            warnings.append(f"{entry}: literal api_key not stored; uses {provider.api_key_env}")
        rec = c.mapping("recommended_config")
        rc = _Checker(entry, rec, problems, prefix="recommended_config.")
        system_prompt = raw.get("custom_system_prompt")
        if isinstance(system_prompt, bool):
            if system_prompt:
                warnings.append(
                    f"{entry}: custom_system_prompt=true refers to FastChat's own prompt; "
                    "set system_prompt yourself"
                )
            system_prompt = ""
        model_id = c.string("model_name", default=model_name) or model_name
        models.append(
            ModelConfig(
                slug=_slugify(model_name),
                display_name=model_name,
                provider=provider.name,
                provider_model_id=model_id,
                temperature=rc.number("temperature", 0, 2),
                top_p=rc.number("top_p", 0, 1),
                max_tokens=rc.number("max_new_tokens", 1, integer=True),
                system_prompt=system_prompt if isinstance(system_prompt, str) else "",
                extra_body=rc.mapping("extra_body"),
                use_in_arena=c.boolean("text-arena", True),
            )
        )
    slugs = [m.slug for m in models]
    for slug in {s for s in slugs if slugs.count(s) > 1}:
        problems.append(Problem(f"model slug {slug!r}", "slug", "two model names map to it"))
    if problems:
        raise ConfigError(problems)
    for warning in warnings:
        logger.warning("FastChat config: %s", warning)
    return RegistryConfig(tuple(providers.values()), tuple(models), tuple(warnings))
