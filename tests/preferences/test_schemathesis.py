"""Property-based calls against our own OpenAPI schema: no endpoint of ours answers 5xx."""

from __future__ import annotations

import pytest

from preferences import services
from tests.preferences import factories as f

pytestmark = pytest.mark.django_db

OURS = ("/api/v1/pairs/", "/api/v1/battles/", "/api/v1/models/", "/api/v1/releases/")


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the raw WSGI app must not close the test's DB connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_schemathesis_finds_no_server_error(researcher, enqueued, keep_test_connection):
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.checks import not_a_server_error

    from config.wsgi import application

    for i in range(3):
        f.voted_battle(prompts=[f"s{i}"], winner="ab"[i % 2])
    release = services.release_create(user=researcher, name="s", version="1", format="hh")
    services.release_build(release_id=release.pk)
    _, secret = services.token_create(user=researcher, name="st", scope="write")
    headers = {"Authorization": f"Bearer {secret}"}

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith(OURS)]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case):
            if "public_id" in (case.path_parameters or {}):
                case.path_parameters["public_id"] = str(release.public_id)
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        call()
