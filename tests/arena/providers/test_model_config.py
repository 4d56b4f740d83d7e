"""Model registry config: our YAML/JSON format and FastChat's api_endpoint.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from arena.model_config import ConfigError, load_config, parse_config
from arena.providers import Endpoint

ROOT = Path(__file__).resolve().parents[3]

GOOD = """
providers:
  - name: openai
    kind: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    timeouts: {connect_s: 3, first_token_s: 20, total_s: 90}
    max_concurrency: 8
    rpm: 100
    extra_headers: {X-Title: arena}
models:
  - slug: gpt-4o-mini
    display_name: GPT-4o mini
    organisation: OpenAI
    license: proprietary
    knowledge_cutoff: 2023-10-01
    provider: openai
    provider_model_id: gpt-4o-mini
    temperature: 0.7
    top_p: 0.9
    max_tokens: 512
    system_prompt: Be helpful.
    extra_body: {seed: 1}
    active: true
    sampling_weight: 2
    use_in_arena: true
    use_in_annotation: false
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_yaml_file_parses_to_dataclasses(tmp_path):
    config = load_config(_write(tmp_path, "models.yaml", GOOD))

    [provider] = config.providers
    assert (provider.name, provider.kind, provider.api_key_env) == (
        "openai",
        "openai",
        "OPENAI_API_KEY",
    )
    assert provider.timeouts.first_token_s == 20 and provider.rpm == 100
    [model] = config.models
    assert model.knowledge_cutoff == "2023-10-01"
    assert model.sampling_weight == 2.0 and model.use_in_annotation is False
    params = model.generation_params(seed=5)
    assert (params.model, params.max_tokens, params.seed) == ("gpt-4o-mini", 512, 5)
    assert params.extra_body == {"seed": 1}


def test_endpoint_resolves_the_key_from_the_environment():
    config = parse_config(yaml.safe_load(GOOD))

    endpoint = config.provider("openai").to_endpoint({"OPENAI_API_KEY": "sk-real"})

    assert isinstance(endpoint, Endpoint) and endpoint.api_key == "sk-real"
    assert endpoint.extra_headers == {"X-Title": "arena"}
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        config.provider("openai").to_endpoint({})


def test_json_file_in_our_format(tmp_path):
    data = {
        "providers": [{"name": "demo", "kind": "demo"}],
        "models": [{"slug": "demo-terse", "provider": "demo"}],
    }
    config = load_config(_write(tmp_path, "models.json", json.dumps(data)))

    assert config.models[0].provider_model_id == "demo-terse"
    assert config.models[0].display_name == "demo-terse"


def test_shipped_example_loads():
    config = load_config(ROOT / "models.example.yaml")

    assert [m.slug for m in config.models][:1] == ["demo-scholar"]


@pytest.mark.parametrize(
    ("change", "entry", "field"),
    [
        ({"kind": "gemini"}, "providers[0] (openai)", "kind"),
        ({"base_url": "not a url"}, "providers[0] (openai)", "base_url"),
        ({"api_key": "sk-abc"}, "providers[0] (openai)", "api_key"),
        (
            {"api_key_env": "sk-abcdefghijklmnopqrstuvwxyz123456"},
            "providers[0] (openai)",
            "api_key_env",
        ),
        ({"max_concurrency": 0}, "providers[0] (openai)", "max_concurrency"),
        ({"timeouts": {"total_s": "long"}}, "providers[0] (openai)", "timeouts.total_s"),
        ({"timeout": 3}, "providers[0] (openai)", "timeout"),
    ],
)
def test_bad_provider_field_is_named(change, entry, field):
    data = yaml.safe_load(GOOD)
    data["providers"][0].update(change)

    with pytest.raises(ConfigError) as excinfo:
        parse_config(data)

    assert [(p.entry, p.field) for p in excinfo.value.problems] == [(entry, field)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider": "nope"}, "provider"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": "high"}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"sampling_weight": -1}, "sampling_weight"),
        ({"active": "yes"}, "active"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"knowledge_cutoff": "last year"}, "knowledge_cutoff"),
        ({"extra_body": [1]}, "extra_body"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_model_field_is_named(change, field):
    data = yaml.safe_load(GOOD)
    data["models"][0].update(change)

    with pytest.raises(ConfigError) as excinfo:
        parse_config(data)

    [problem] = excinfo.value.problems
    assert problem.entry.startswith("models[0]") and problem.field == field
    assert field in str(excinfo.value)


def test_every_problem_is_listed_at_once():
    data = {
        "providers": [{"name": "p", "kind": "openai"}, {"name": "p", "kind": "demo"}],
        "models": [
            {"slug": "a", "provider": "p", "temperature": 9},
            {"slug": "a", "provider": "p"},
        ],
    }

    with pytest.raises(ConfigError) as excinfo:
        parse_config(data)

    fields = sorted(p.field for p in excinfo.value.problems)
    assert fields == ["base_url", "name", "slug", "temperature"]


def test_unparseable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(_write(tmp_path, "models.yaml", "providers: [unclosed"))


FASTCHAT = {
    "gpt-4o-2024-05-13": {
        "model_name": "gpt-4o-2024-05-13",
        "api_type": "openai",
        "api_base": "https://api.openai.com/v1",
        "api_key": "sk-LITERAL-KEY-123",
        "anony_only": False,
        "recommended_config": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 2048},
        "text-arena": True,
        "vision-arena": False,
    },
    "claude-3-5-sonnet-20240620": {
        "model_name": "claude-3-5-sonnet-20240620",
        "api_type": "anthropic_message",
        "api_base": "https://api.anthropic.com/v1",
        "api_key": "$ANTHROPIC_API_KEY",
        "custom_system_prompt": True,
        "text-arena": False,
    },
}


def test_fastchat_file_maps_to_providers_and_models(tmp_path, caplog):
    caplog.set_level(logging.WARNING)

    config = load_config(_write(tmp_path, "api_endpoint.json", json.dumps(FASTCHAT)))

    openai, anthropic = config.providers
    assert (openai.kind, openai.base_url) == ("openai", "https://api.openai.com/v1")
    assert openai.api_key_env == "API_OPENAI_COM_API_KEY"
    assert (anthropic.kind, anthropic.base_url) == ("anthropic", "https://api.anthropic.com")
    assert anthropic.api_key_env == "ANTHROPIC_API_KEY"
    gpt, claude = config.models
    assert (gpt.slug, gpt.provider, gpt.provider_model_id) == (
        "gpt-4o-2024-05-13",
        openai.name,
        "gpt-4o-2024-05-13",
    )
    assert (gpt.temperature, gpt.top_p, gpt.max_tokens) == (0.7, 1.0, 2048)
    assert claude.use_in_arena is False
    assert any("API_OPENAI_COM_API_KEY" in w for w in config.warnings)
    assert "sk-LITERAL-KEY-123" not in repr(config) + " ".join(config.warnings) + caplog.text
    assert "API_OPENAI_COM_API_KEY" in caplog.text


def test_fastchat_unsupported_api_type_is_an_error_unless_skipped():
    data = {"gemini-pro": {"api_type": "gemini", "api_key": "x"}, **FASTCHAT}

    with pytest.raises(ConfigError) as excinfo:
        parse_config(data)
    assert excinfo.value.problems[0].field == "api_type"

    config = parse_config(data, skip_unsupported=True)
    assert len(config.models) == 2
    assert any("gemini" in w for w in config.warnings)
