"""FastChat's ``api_endpoint.json``: a dict keyed by model name with ``api_type``, ``api_base``,
``api_key``, ``recommended_config``... mapped to our registry.

Providers are derived from the distinct (kind, API base) pairs. A literal ``api_key`` is never
kept: it becomes the name of an environment variable to set, with a warning (``$NAME`` or
``${NAME}`` is taken as that variable's name).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from arena.model_config.schema import ModelConfig, ProviderConfig, RegistryConfig
from arena.model_config.validation import ENV_NAME, Checker, ConfigError, Problem
from arena.providers.base import ProviderKind

logger = logging.getLogger("arena.model_config")

KINDS: dict[str, ProviderKind] = {
    "openai": "openai",
    "openai_no_stream": "openai",
    "openai_o1": "openai",
    "mistral": "openai",
    "nvidia": "openai",
    "anthropic": "anthropic",
    "anthropic_message": "anthropic",
    "anthropic_o1": "anthropic",
}
DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
FIELDS = {
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


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug[:100] or "model"


def parse_fastchat(data: Mapping[str, Any], *, skip_unsupported: bool = False) -> RegistryConfig:
    """Map FastChat's registry to ours (see the module docstring for the key rule); raises
    ConfigError listing every problem, logs and returns the warnings otherwise."""
    reader = _FastChatReader(skip_unsupported=skip_unsupported)
    models = [
        model
        for model_name, raw in data.items()
        if (model := reader.model(model_name, raw)) is not None
    ]
    slugs = [m.slug for m in models]
    for slug in {s for s in slugs if slugs.count(s) > 1}:
        reader.problems.append(Problem(f"model slug {slug!r}", "slug", "two model names map to it"))
    if reader.problems:
        raise ConfigError(reader.problems)
    for warning in reader.warnings:
        logger.warning("FastChat config: %s", warning)
    return RegistryConfig(tuple(reader.providers.values()), tuple(models), tuple(reader.warnings))


class _FastChatReader:
    """Reads the entries one by one, deriving the providers as they appear."""

    def __init__(self, *, skip_unsupported: bool) -> None:
        self.skip_unsupported = skip_unsupported
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.providers: dict[tuple[str, str], ProviderConfig] = {}

    def model(self, model_name: str, raw: Mapping[str, Any]) -> ModelConfig | None:
        """The entry's model (None when it is skipped or wrong: see ``problems``)."""
        entry = f"model {model_name!r}"
        c = Checker(entry, raw, self.problems)
        for key in raw:
            if key not in FIELDS:
                self.warnings.append(f"{entry}: field {key!r} ignored")
        kind = self._kind(c)
        if kind is None:
            return None
        base_url = self._base_url(c, kind)
        if base_url is None:
            return None
        provider = self._provider(entry, raw, kind, base_url)
        rc = Checker(entry, c.mapping("recommended_config"), self.problems, "recommended_config.")
        system_prompt = self._system_prompt(entry, raw.get("custom_system_prompt"))
        return ModelConfig(
            slug=slugify(model_name),
            display_name=model_name,
            provider=provider.name,
            provider_model_id=c.string("model_name", default=model_name) or model_name,
            temperature=rc.number("temperature", 0, 2),
            top_p=rc.number("top_p", 0, 1),
            max_tokens=rc.number("max_new_tokens", 1, integer=True),
            system_prompt=system_prompt,
            extra_body=rc.mapping("extra_body"),
            use_in_arena=c.boolean("text-arena", True),
        )

    def _kind(self, c: Checker) -> ProviderKind | None:
        api_type = c.string("api_type", required=True)
        kind = KINDS.get(api_type)
        if kind is None and api_type:
            if self.skip_unsupported:
                self.warnings.append(f"{c.entry}: api_type {api_type!r} not supported; skipped")
            else:
                c.bad("api_type", f"not supported: {api_type!r} (supported: {sorted(KINDS)})")
        return kind

    def _base_url(self, c: Checker, kind: ProviderKind) -> str | None:
        base_url = c.string("api_base") or DEFAULT_BASES[kind]
        if kind == "anthropic":
            base_url = re.sub(r"/v1/?$", "", base_url)  # our Anthropic base has no version
        if not urlparse(base_url).netloc:
            c.bad("api_base", f"not a URL: {base_url!r}")
            return None
        return base_url

    def _provider(
        self, entry: str, raw: Mapping[str, Any], kind: ProviderKind, base_url: str
    ) -> ProviderConfig:
        """The provider of (kind, base URL), created by its first model."""
        provider = self.providers.get((kind, base_url))
        literal_key = raw.get("api_key")
        if provider is None:
            host = urlparse(base_url).netloc
            name = slugify(host.split(":")[0])
            if any(p.name == name for p in self.providers.values()):
                name = f"{name}-{len(self.providers) + 1}"
            provider = ProviderConfig(
                name=name,
                kind=kind,
                base_url=base_url,
                api_key_env=self._api_key_env(entry, name, literal_key),
            )
            self.providers[(kind, base_url)] = provider
        elif isinstance(literal_key, str) and literal_key and provider.api_key_env:
            self.warnings.append(
                f"{entry}: literal api_key not stored; uses {provider.api_key_env}"
            )
        return provider

    def _api_key_env(self, entry: str, provider_name: str, api_key: Any) -> str | None:
        """The variable a new provider's key is read from: ``$NAME`` names it; a literal key is
        dropped and a variable named after the provider is asked for instead."""
        if not isinstance(api_key, str) or not api_key.strip():
            return None
        ref = api_key.strip().lstrip("$").strip("{}")
        if ENV_NAME.match(ref) and api_key.strip().startswith("$"):
            return ref
        api_key_env = re.sub(r"[^A-Z0-9]+", "_", provider_name.upper()) + "_API_KEY"
        self.warnings.append(
            f"{entry}: literal api_key not stored; set environment variable "
            f"{api_key_env} instead (and rotate that key if the file was shared)"
        )
        return api_key_env

    def _system_prompt(self, entry: str, value: Any) -> str:
        """``custom_system_prompt``: a string is the prompt; ``true`` means FastChat's own."""
        if isinstance(value, bool):
            if value:
                self.warnings.append(
                    f"{entry}: custom_system_prompt=true refers to FastChat's own prompt; "
                    "set system_prompt yourself"
                )
            return ""
        return value if isinstance(value, str) else ""
