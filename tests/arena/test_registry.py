"""Model registry: load_models, seed_demo, ping_models, and keys that never leak."""

import json
import logging
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from arena.models import LLM, Provider
from tests.fakes.fake_llm import FakeLLMServer

pytestmark = pytest.mark.django_db

SECRET = "sk-live-MARKER-9f8e7d6c5b4a"

GOOD = """
providers:
  - name: local
    kind: openai
    base_url: http://127.0.0.1:9/v1
    api_key_env: PA_TEST_KEY
    timeouts: {connect_s: 2, first_token_s: 10, total_s: 60}
models:
  - slug: alpha
    display_name: Alpha 7B
    organisation: Acme
    provider: local
    provider_model_id: acme/alpha-7b
    temperature: 0.3
  - slug: beta
    display_name: Beta
    provider: local
    provider_model_id: beta
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_models_creates_then_is_idempotent(tmp_path):
    path = _write(tmp_path, "m.yaml", GOOD)
    out = StringIO()
    call_command("load_models", path, stdout=out)
    assert "3 created" in out.getvalue()
    alpha = LLM.objects.get(slug="alpha")
    assert alpha.provider.name == "local" and alpha.temperature == 0.3
    assert alpha.provider.api_key_env == "PA_TEST_KEY"
    out = StringIO()
    call_command("load_models", path, stdout=out)
    assert "0 created, 0 updated, 3 unchanged" in out.getvalue()


def test_load_models_updates_changed_fields(tmp_path):
    call_command("load_models", _write(tmp_path, "m.yaml", GOOD), stdout=StringIO())
    out = StringIO()
    call_command("load_models", _write(tmp_path, "m2.yaml", GOOD.replace("0.3", "0.9")), stdout=out)
    assert "updated model alpha" in out.getvalue()
    assert LLM.objects.get(slug="alpha").temperature == 0.9


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("kind: openai", "kind: cohere"), "kind"),
        (
            GOOD.replace(
                "provider: local\n    provider_model_id: beta",
                "provider: nowhere\n    provider_model_id: beta",
            ),
            "provider",
        ),
        (GOOD.replace("temperature: 0.3", "temperature: hot"), "temperature"),
        (GOOD.replace("slug: beta", "slug: alpha"), "slug"),
        ("providers: [\n", "cannot parse"),
    ],
)
def test_bad_file_is_reported_with_the_field_and_changes_nothing(tmp_path, text, fragment):
    with pytest.raises(CommandError) as excinfo:
        call_command("load_models", _write(tmp_path, "bad.yaml", text), stdout=StringIO())
    assert fragment in str(excinfo.value)
    assert not Provider.objects.exists() and not LLM.objects.exists()


def test_load_models_reads_fastchat_api_endpoint_json(tmp_path):
    fastchat = {
        "gpt-4o-mini": {
            "model_name": "gpt-4o-mini",
            "api_type": "openai",
            "api_base": "https://api.openai.com/v1",
            "api_key": SECRET,
            "anony_only": False,
            "recommended_config": {"temperature": 0.7, "top_p": 1.0},
            "text-arena": True,
        }
    }
    err = StringIO()
    call_command(
        "load_models",
        _write(tmp_path, "api_endpoint.json", json.dumps(fastchat)),
        stdout=StringIO(),
        stderr=err,
    )
    llm = LLM.objects.select_related("provider").get()
    assert llm.provider_model_id == "gpt-4o-mini" and llm.temperature == 0.7
    # The literal key from the FastChat file is never stored: only a variable name is.
    assert SECRET not in json.dumps(list(Provider.objects.values()), default=str)
    assert llm.provider.api_key_env
    assert "warning" in err.getvalue()


def test_seed_demo_registers_five_distinct_models_once():
    call_command("seed_demo", "--if-empty", stdout=StringIO())
    assert LLM.objects.filter(provider__kind="demo").count() >= 5
    out = StringIO()
    call_command("seed_demo", "--if-empty", stdout=out)
    assert "skipped" in out.getvalue()


def test_ping_models_against_a_real_fake_server(monkeypatch):
    monkeypatch.setenv("PA_TEST_KEY", SECRET)
    with FakeLLMServer(api_key=SECRET) as server:
        provider = Provider.objects.create(
            name="fake", kind="openai", base_url=server.openai_base_url, api_key_env="PA_TEST_KEY"
        )
        LLM.objects.create(slug="f1", display_name="F1", provider=provider, provider_model_id="f1")
        out = StringIO()
        call_command("ping_models", stdout=out)
    assert "1/1 answered" in out.getvalue()
    assert SECRET not in out.getvalue()


def test_ping_models_reports_a_dead_provider_without_the_key(monkeypatch):
    monkeypatch.setenv("PA_TEST_KEY", SECRET)
    provider = Provider.objects.create(
        name="dead", kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="PA_TEST_KEY",
        connect_timeout=1, total_timeout=3, max_retries=0,
    )  # fmt: skip
    LLM.objects.create(slug="d1", display_name="D1", provider=provider, provider_model_id="d1")
    out = StringIO()
    call_command("ping_models", stdout=out)
    assert "0/1 answered" in out.getvalue()
    assert SECRET not in out.getvalue()


def test_provider_key_never_appears_in_admin_pages_or_logs(client, monkeypatch, caplog):
    monkeypatch.setenv("PA_TEST_KEY", SECRET)
    admin = User.objects.create_superuser("ops", "ops@example.org", "pw-long-enough-1")
    client.force_login(admin)
    provider = Provider.objects.create(
        name="p", kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="PA_TEST_KEY"
    )
    llm = LLM.objects.create(slug="m", display_name="M", provider=provider, provider_model_id="m")
    caplog.set_level(logging.DEBUG)
    pages = [
        "/admin/arena/provider/",
        f"/admin/arena/provider/{provider.pk}/change/",
        "/admin/arena/llm/",
        f"/admin/arena/llm/{llm.pk}/change/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url
    assert "PA_TEST_KEY" in client.get(pages[1]).content.decode()  # the variable NAME is shown
    assert SECRET not in caplog.text
    assert SECRET not in repr(provider.to_endpoint())


def test_admin_refuses_a_literal_key_in_the_env_name_field(client):
    admin = User.objects.create_superuser("ops", "ops@example.org", "pw-long-enough-1")
    client.force_login(admin)
    response = client.post(
        "/admin/arena/provider/add/",
        {
            "name": "x", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": SECRET,
            "connect_timeout": 5, "first_token_timeout": 30, "total_timeout": 180,
            "max_concurrency": 4, "max_retries": 2, "extra_headers": "{}", "options": "{}",
            "created_0": "2026-01-01", "created_1": "00:00:00",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "environment variable" in response.content.decode()
    assert not Provider.objects.exists()
