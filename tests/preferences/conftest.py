from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.preferences import factories


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def rankings_source(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Any]], None]:
    """Stand in for ``annotations.selectors.accepted_rankings`` with fixed rankings."""

    def install(rankings: list[Any]) -> None:
        from preferences.selectors import rankings as selectors

        def accepted_rankings(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return iter(sorted(rankings, key=lambda r: r.pk))

        monkeypatch.setattr(selectors, "ranking_source", lambda: accepted_rankings)

    return install


@pytest.fixture
def researcher(db: Any) -> Any:
    return factories.researcher()


@pytest.fixture
def outsider(db: Any) -> Any:
    return factories.outsider()


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record what services hand to the background seam (tests then build explicitly)."""
    calls: list[tuple[Any, ...]] = []
    from preferences import services

    monkeypatch.setattr(services, "enqueue", lambda name, *args, **kw: calls.append((name, *args)))
    return calls
