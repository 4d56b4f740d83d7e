"""Test-session rules and the fixtures for real services.

``REQUIRE_SERVICES=1`` (set by CI for the production run): the session fails at start unless the
database is PostgreSQL and Redis answers, and fails at the end if any test was skipped, so the
real run can never quietly fall back to the embedded default.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import harness

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _services_problem() -> str | None:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        return f"the database is not PostgreSQL ({engine}); set DATABASE_URL"
    if not settings.REDIS_URL:
        return "REDIS_URL is not set"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis does not answer at REDIS_URL: {exc}"
    return None


SERVICES_PROBLEM: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global SERVICES_PROBLEM
    SERVICES_PROBLEM = _services_problem()
    if REQUIRE_SERVICES and SERVICES_PROBLEM:
        pytest.exit(f"REQUIRE_SERVICES=1 but {SERVICES_PROBLEM}", returncode=3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SERVICES_PROBLEM:
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL and Redis: {SERVICES_PROBLEM}")
    for item in items:
        if "services" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(
                f"REQUIRE_SERVICES=1: {skipped} test(s) were skipped; failing the run.", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- real processes ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_database_url(django_db_setup: Any, django_db_blocker: Any) -> str:
    from django.db import connection

    with django_db_blocker.unblock():
        return harness.database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def celery_worker(live_database_url: str) -> Iterator[harness.Process]:
    """A real Celery worker with embedded beat against the test database and the real Redis."""
    with harness.celery_worker(live_database_url, HEARTBEAT_SECONDS="0.5") as process:
        yield process


@pytest.fixture(scope="session")
def asgi_server(live_database_url: str) -> Iterator[harness.Process]:
    """The ASGI app under uvicorn (HTTP + WebSockets) against the test database and Redis."""
    with harness.asgi_server(live_database_url) as process:
        yield process


@pytest.fixture
def run_in_browser(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Run an async Playwright scenario in headless Debian Chromium, off the Django thread.

    ``run_in_browser(scenario)`` calls ``await scenario(page, shot)`` where ``shot(name)`` saves a
    screenshot under ``var/screenshots/<test name>/``. ORM work stays in the test body, before and
    after; the browser's event loop runs on its own thread so Django never sees an async context.
    """
    shots = harness.ROOT / "var" / "screenshots" / request.node.name
    shots.mkdir(parents=True, exist_ok=True)

    def run(
        scenario: Callable[..., Awaitable[Any]], *, viewport: dict[str, int] | None = None
    ) -> Any:
        from playwright.async_api import async_playwright

        async def main() -> Any:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=harness.CHROMIUM, args=harness.CHROMIUM_ARGS
                )
                context = await browser.new_context(
                    viewport=viewport or {"width": 1280, "height": 900}
                )
                page = await context.new_page()
                page.set_default_timeout(20_000)

                async def shot(name: str) -> Path:
                    path = shots / f"{name}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    return path

                try:
                    return await scenario(page, shot)
                except BaseException:
                    await shot("failure")
                    raise
                finally:
                    await browser.close()

        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
                result["error"] = exc

        thread = threading.Thread(target=target, name="playwright")
        thread.start()
        thread.join(timeout=300)
        if "error" in result:
            raise result["error"]
        return result.get("value")

    return run


@pytest.fixture(autouse=True)
def _fresh_arena_registry() -> Iterator[None]:
    """The pair sampler caches the model registry per process for a few seconds; tests create
    their own models, so each starts with an empty cache."""
    from arena.sampling import forget_registry

    forget_registry()
    yield
    forget_registry()
