"""Property-based calls against our own OpenAPI schema, every operation, every schemathesis check.

The Python-API equivalent of ``schemathesis run --checks all`` in both generation modes, once
anonymous and once with a write token: no 5xx, and every answer (status, content type,
headers, body) is one the schema documents. Examples per operation are bounded so the whole
run fits CI; the PostgreSQL run is the one that matters (SQLite hides NUL bytes and date
ranges), so it is a ``services`` test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import pytest

from core.middleware import CONTROL
from preferences import services
from tests.annotations import factories as annotation_factories
from tests.preferences import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.services]

EXAMPLES_PER_OPERATION = 12  # about 35 s on PostgreSQL; every operation x 2 identities x 2 modes


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


@pytest.fixture
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of calls from one client: throttling would answer most of them 429 (documented,
    but then the run explores nothing else). Throttling has its own tests."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "allow_request", lambda self, request, view: True)


def _known_objects(researcher: Any) -> dict[str, str]:
    """Real path parameters, so positive cases get past the 404 into the views."""
    for i in range(3):
        f.voted_battle(prompts=[f"s{i}"], winner="ab"[i % 2])
    release = services.release_create(user=researcher, name="s", version="1", format="hh")
    services.release_build(release_id=release.pk)
    project = annotation_factories.project(annotators=[researcher], reviewers=[researcher])
    annotation_factories.items(project, 3)
    return {"public_id": str(release.public_id), "slug": project.slug}


def _strings(value: Any) -> Iterator[str]:
    """Every string a case sends: keys and values, however nested."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _acceptable_positive(case: Any) -> bool:
    """Data the schema cannot tell apart from what the API must refuse:
    - control characters in any string: the request guard refuses them everywhere (PostgreSQL
      refuses NUL), a rule no schema string carries;
    - a ``cursor``: opaque, valid only as given out in a ``next`` link (a made-up one is a 400).
    """
    # Path parameters come percent-encoded; the guard checks the decoded path.
    path = [unquote(str(value)) for value in (case.path_parameters or {}).values()]
    parts = [path, case.query, case.headers, case.body]
    if any(CONTROL.search(text) for text in _strings(parts)):
        return False
    return "cursor" not in (case.query or {})


def _cross_field_refusal(case: Any) -> bool:
    """A release in a format without ties that asks for ties: a rule between two fields, which
    the schema cannot state (the API answers 400 ``format_cannot_express_ties``)."""
    from preferences.exports import FORMATS

    body = case.body if isinstance(case.body, Mapping) else {}
    if case.operation.label != "POST /api/v1/releases/" or body.get("format") not in FORMATS:
        return False
    filters = body.get("filters") if isinstance(body.get("filters"), Mapping) else {}
    wants_ties = filters.get("include_ties") or filters.get("include_both_bad")
    return bool(wants_ties) and not FORMATS[body["format"]].ties


def _run_operation(operation: Any, mode: Any, headers: dict[str, str], known: dict[str, str]):
    from hypothesis import HealthCheck, assume, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.checks import CHECKS
    from schemathesis.generation import GenerationMode

    every_check = list(CHECKS.get_all())

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        # Both modes: a negative case is often negative in one part only, and the others are
        # then held to the positive checks.
        assume(_acceptable_positive(case) and not _cross_field_refusal(case))
        if mode == GenerationMode.POSITIVE:
            for name in (case.path_parameters or {}).keys() & known.keys():
                case.path_parameters[name] = known[name]
        case.call_and_validate(headers=headers, checks=every_check)

    call()


def test_schemathesis_whole_schema_all_checks(
    researcher, enqueued, keep_test_connection, unthrottled
):
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    from config.wsgi import application

    known = _known_objects(researcher)
    token, secret = services.token_create(user=researcher, name="st", scope="write")
    identities = {"anonymous": {}, "write token": {"Authorization": f"Bearer {secret}"}}

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every operation of the API, none filtered out

    failures = []
    for operation in operations:
        for identity, headers in identities.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _run_operation(operation, mode, headers, known)
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE  # no parameter or body to break
                except (Exception, BaseExceptionGroup) as exc:  # every operation in one report
                    failures.append(f"{operation.label} ({identity}, {mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)

    # Token management is session-only, so the write token could not have revoked itself.
    token.refresh_from_db()
    assert token.revoked_at is None
