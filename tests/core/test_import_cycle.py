"""DRF's settings name classes of core.api; resolving them first must not be an import cycle
(a Celery worker's start-up checks did, depending on their order, and the worker exited)."""

import subprocess
import sys

from tests import harness

RESOLVE_FIRST = (
    "import django; django.setup(); "
    "from rest_framework.settings import api_settings; "
    "print(api_settings.DEFAULT_PAGINATION_CLASS.__name__)"
)


def test_drf_settings_resolve_core_api_before_rest_framework_views_is_imported():
    env = harness.service_env("sqlite:///var/import-cycle.sqlite3", DEBUG="1")
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", RESOLVE_FIRST],
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "CreatedCursorPagination"
