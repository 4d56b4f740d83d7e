"""core.api is named in DRF's settings and imports DRF: loading either first must work (an import
cycle made Celery workers exit at start, depending on the order Django ran its checks in)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT

FIRST = [
    "from rest_framework.settings import api_settings; api_settings.DEFAULT_PAGINATION_CLASS",
    "from rest_framework.settings import api_settings; api_settings.DEFAULT_PARSER_CLASSES",
    "import core.api",
    "import rest_framework.views",
    "from django.core import checks; checks.run_checks()",
]


@pytest.mark.parametrize("first", FIRST)
def test_the_api_kernel_loads_in_any_order(first):
    code = f"import django; django.setup(); {first}; import core.api, rest_framework.views"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
