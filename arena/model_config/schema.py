"""The parsed registry: plain frozen dataclasses, whatever format they were read from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arena.model_config.validation import ConfigError, Problem
from arena.providers.base import Endpoint, GenerationParams, ProviderKind, Timeouts


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
