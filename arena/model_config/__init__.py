"""Declarative model registry config: parse and validate, no Django.

Two input formats:

- ours (YAML or JSON): ``{"providers": [...], "models": [...]}``; see ``models.example.yaml``
  (``native``).
- FastChat's ``api_endpoint.json``: a dict keyed by model name with ``api_type``, ``api_base``,
  ``api_key``, ``recommended_config``... Providers are derived from the distinct API bases. A
  literal ``api_key`` is never kept: it becomes the name of an environment variable to set, with
  a warning (``fastchat``).

:func:`load_config` / :func:`parse_config` return a :class:`RegistryConfig` (``schema``) or raise
:class:`ConfigError` listing every problem (entry and field; ``validation``). Secrets are
resolved only by :meth:`ProviderConfig.to_endpoint`, from the environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from arena.model_config.fastchat import parse_fastchat
from arena.model_config.native import parse_native
from arena.model_config.schema import ModelConfig, ProviderConfig, RegistryConfig
from arena.model_config.validation import ConfigError, Problem

__all__ = [
    "ConfigError",
    "ModelConfig",
    "Problem",
    "ProviderConfig",
    "RegistryConfig",
    "load_config",
    "parse_config",
    "parse_fastchat",
    "parse_native",
]


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
        return parse_native(data)
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values()):
        return parse_fastchat(data, skip_unsupported=skip_unsupported)
    raise ConfigError(
        [Problem("config", "", "expected {providers: [...], models: [...]} or a FastChat dict")]
    )
