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


def _database_name(url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(d['ENGINE'].rsplit('.', 1)[1], d['NAME'], "
        "d.get('HOST', ''), d.get('PORT', ''))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **clean,
            "DEBUG": "1",
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_documented_database_url_form_gives_its_database():
    forms = {
        "sqlite:///var/x.sqlite3": ["sqlite3", "var/x.sqlite3"],
        "sqlite:////tmp/pa/x.sqlite3": ["sqlite3", "/tmp/pa/x.sqlite3"],
        "postgresql://u:p@db.example.org:6543/arena": [
            "postgresql",
            "arena",
            "db.example.org",
            "6543",
        ],
        "postgres://db.example.org/arena": ["postgresql", "arena", "db.example.org"],
    }
    for url, expected in forms.items():
        result = _database_name(url)
        assert result.returncode == 0, (url, result.stderr[-500:])
        assert result.stdout.split() == expected, url


def test_a_sqlite_url_with_a_host_or_no_file_is_refused_with_the_forms_that_work():
    for url in ("sqlite://localhost/x", "sqlite://:memory:"):
        result = _database_name(url)
        assert result.returncode != 0
        assert "names a file, not a host" in result.stderr
        assert "sqlite:////absolute/path" in result.stderr
    result = _database_name("sqlite:///")
    assert result.returncode != 0 and "names no file" in result.stderr
