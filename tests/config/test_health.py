import json
import os
import subprocess
import sys

import pytest

from tests.harness import ROOT, free_port

pytestmark = pytest.mark.django_db


def test_healthz_reports_every_local_service_up(client):
    response = client.get("/healthz")
    body = response.json()
    assert set(body["checks"]) == {"database", "cache", "channel_layer", "workers"}
    if body["down"] == ["workers"]:  # Celery mode with no worker in this test: reported honestly
        assert response.status_code == 503
        return
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_healthz_reports_every_real_service_up_with_a_worker(client, celery_worker):
    body = client.get("/healthz").json()
    assert body["status"] == "ok", body
    assert body["checks"]["database"]["vendor"] == "postgresql"
    assert body["checks"]["cache"]["backend"] == "redis"
    assert body["checks"]["channel_layer"]["backend"] == "RedisPubSubChannelLayer"
    assert celery_worker.url in body["checks"]["workers"]["workers"]


def test_healthz_names_redis_down_when_nothing_listens():
    """A real refused connection: REDIS_URL points at a loopback port with no server."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    code = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz'); print(r.status_code); print(r.content.decode())"
    )
    env = {
        **os.environ,
        "DEBUG": "1",
        "REDIS_URL": dead,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split("\n", 1)
    data = json.loads(body)
    assert status == "503"
    assert data["status"] == "down"
    assert {"cache", "channel_layer", "workers"} <= set(data["down"])
    assert "database" not in data["down"]
    assert (
        "refused" in data["checks"]["cache"]["error"].lower()
        or "connect" in data["checks"]["cache"]["error"].lower()
    )
