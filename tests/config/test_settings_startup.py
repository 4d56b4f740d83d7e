"""Start-up rules of config/settings.py, checked in fresh interpreters with a controlled env."""

import os
import subprocess
import sys

from tests.harness import ROOT


def _settings_in_subprocess(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "TESTING"}
    }
    clean.update(env)
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.BACKGROUND_MODE)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_is_a_clear_startup_error():
    result = _settings_in_subprocess(ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_missing_allowed_hosts_with_debug_off_is_a_clear_startup_error():
    result = _settings_in_subprocess(SECRET_KEY="x" * 60)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_bad_database_url_names_the_variable():
    result = _settings_in_subprocess(DEBUG="1", DATABASE_URL="mysql://db/x")
    assert result.returncode != 0
    assert "DATABASE_URL must start with one of" in result.stderr


def test_nothing_set_gives_the_embedded_default():
    result = _settings_in_subprocess(DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django_prometheus.db.backends.sqlite3", "embedded"]


def test_production_settings_pass_check_deploy():
    env = {
        "SECRET_KEY": "Zq8vL2mN5xR7tY1pW4bK9sD3hF6gJ0cVaEuI-q9w8e7r6t5y4u3i2o1p0a9s8d7f6g",
        "ALLOWED_HOSTS": "arena.example.org",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "TESTING"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
