"""Leases on release builds: the sweeper ends the build of a dead worker as failed with Retry,
cleans its temporary directory, and a swept build that wakes up changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core import leases
from core.background import periodic_jobs
from preferences import services
from preferences.models import DatasetRelease
from preferences.tasks import sweep_releases
from tests.harness import wait_until
from tests.preferences import factories as f
from tests.preferences.test_api import bearer

pytestmark = pytest.mark.django_db

LEASE = 0.2  # seconds: a dead worker's lease lapses within the test


@pytest.fixture
def short_leases(settings: Any) -> Iterator[None]:
    settings.PREFERENCES_RELEASE_LEASE_SECONDS = LEASE
    # A lease store younger than a lease period is not judged (it may have just restarted).
    wait_until(lambda: leases.store_age() >= LEASE, timeout=5, what="a settled lease store")
    yield


@pytest.fixture
def release(researcher: Any, enqueued: list[tuple[Any, ...]]) -> DatasetRelease:
    for i in range(12):
        f.voted_battle(prompts=[f"prompt {i}"], winner="ab"[i % 2])
    return services.release_create(user=researcher, name="prefs", version="1.0", format="hh")


def _building_on_a_dead_worker(release: DatasetRelease) -> Path:
    """The state a SIGKILLed worker leaves: the release claimed an hour ago, half its files in
    the build's temporary directory, and a lease nobody renews (then lapsed)."""
    lease = leases.acquire(services.release_lease_key(release.pk), ttl=LEASE, keep=False)
    assert lease is not None
    started_at = timezone.now() - timedelta(hours=1)
    claimed = DatasetRelease.objects.filter(pk=release.pk, status="pending").update(
        status="building", started_at=started_at, progress=0.4, rows_done=5
    )
    assert claimed
    work = services.work_dir(release.public_id, started_at)
    work.mkdir(parents=True)
    (work / "train.jsonl").write_text('{"half": "written"}\n')
    wait_until(
        lambda: leases.alive([lease.key]) == [False],
        timeout=5,
        what="the dead worker's lease to lapse",
    )
    return work


def test_the_sweep_is_registered_as_a_periodic_job(settings: Any) -> None:
    (job,) = [j for j in periodic_jobs() if j.name == "preferences-sweep-releases"]
    assert job.task_name == "preferences.tasks.sweep_releases"
    assert job.every == settings.PREFERENCES_RELEASE_SWEEP_SECONDS


def test_the_sweep_ends_a_dead_workers_build_as_failed_and_cleans_its_files(
    short_leases: None, release: DatasetRelease
) -> None:
    work = _building_on_a_dead_worker(release)
    assert sweep_releases() == 1
    release.refresh_from_db()
    assert release.status == "failed" and release.error == services.RELEASE_LOST_ERROR
    assert release.finished_at is not None
    assert not work.exists()
    assert sweep_releases() == 0  # ended once


def test_a_build_whose_worker_renews_its_lease_is_not_swept(
    short_leases: None, release: DatasetRelease
) -> None:
    lease = leases.acquire(services.release_lease_key(release.pk), ttl=LEASE)
    assert lease is not None
    try:
        DatasetRelease.objects.filter(pk=release.pk).update(
            status="building", started_at=timezone.now() - timedelta(hours=1)
        )
        renewals = leases.keeper().renewals
        wait_until(lambda: leases.keeper().renewals >= renewals + 2, timeout=5, what="renewals")
        assert sweep_releases() == 0
        release.refresh_from_db()
        assert release.status == "building"
    finally:
        leases.release(lease)


def test_a_build_claimed_less_than_a_lease_ago_is_not_judged(
    short_leases: None, release: DatasetRelease, settings: Any
) -> None:
    settings.PREFERENCES_RELEASE_LEASE_SECONDS = 60
    DatasetRelease.objects.filter(pk=release.pk).update(
        status="building", started_at=timezone.now()
    )
    assert sweep_releases() == 0


def test_a_build_does_not_start_while_another_holds_the_release(
    release: DatasetRelease,
) -> None:
    lease = leases.acquire(services.release_lease_key(release.pk), ttl=30, keep=False)
    assert lease is not None
    try:
        assert services.release_build(release_id=release.pk) is None
        release.refresh_from_db()
        assert release.status == "pending"
    finally:
        leases.release(lease)
    assert services.release_build(release_id=release.pk) is not None
    assert leases.alive([lease.key]) == [False]  # the build released its lease


def _sweep_during_build(monkeypatch: pytest.MonkeyPatch, release: DatasetRelease) -> None:
    """The sweeper ends the build while it writes its rows (as when its lease lapsed on a
    stalled worker that then wakes up)."""
    write_splits: Callable[..., Any] = services.write_splits

    def swept_meanwhile(*args: Any, **kwargs: Any) -> Any:
        row = DatasetRelease.objects.get(pk=release.pk)
        assert services._held(row.pk, row.started_at).update(
            status="failed", error=services.RELEASE_LOST_ERROR
        )
        return write_splits(*args, **kwargs)

    monkeypatch.setattr(services, "write_splits", swept_meanwhile)


@pytest.mark.parametrize("row_delay", [0.0, 0.001], ids=["final-write", "progress-write"])
def test_a_swept_build_that_wakes_up_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, settings: Any, release: DatasetRelease, row_delay: float
) -> None:
    # With a row delay progress is written per row: the first write finds the build swept.
    settings.PREFERENCES_RELEASE_TEST_ROW_DELAY = row_delay
    _sweep_during_build(monkeypatch, release)
    assert services.release_build(release_id=release.pk) is None
    release.refresh_from_db()
    assert release.status == "failed" and release.error == services.RELEASE_LOST_ERROR
    assert release.files == [] and release.progress < 1.0
    assert not services.release_dir(release).exists()
    assert list(services.releases_root().glob("*.tmp")) == []


def test_a_swept_build_cannot_overwrite_its_retry(
    monkeypatch: pytest.MonkeyPatch, researcher: Any, release: DatasetRelease
) -> None:
    """The old build's writes name its own attempt (``started_at``): after Retry claimed the
    release again they match nothing."""
    services.release_build(release_id=release.pk)
    release.refresh_from_db()
    old_started = release.started_at
    DatasetRelease.objects.filter(pk=release.pk).update(status="failed")
    services.release_rebuild(user=researcher, release=release)
    assert services.release_build(release_id=release.pk) is not None
    assert services._held(release.pk, old_started).update(status="failed") == 0
    release.refresh_from_db()
    assert release.status == "ready"


def test_retry_on_the_releases_page_rebuilds_a_failed_release(
    short_leases: None,
    client: Any,
    researcher: Any,
    release: DatasetRelease,
    enqueued: list[tuple[Any, ...]],
) -> None:
    _building_on_a_dead_worker(release)
    sweep_releases()
    client.force_login(researcher)
    page = client.get("/datasets/").content.decode()
    assert services.RELEASE_LOST_ERROR in page and ">Retry</button>" in page
    answer = client.post(f"/datasets/releases/{release.public_id}/retry/")
    assert answer.status_code == 302
    release.refresh_from_db()
    assert release.status == "pending" and release.error == ""
    assert enqueued[-1] == ("preferences.tasks.build_release", release.pk)
    assert services.release_build(release_id=release.pk) is not None
    release.refresh_from_db()
    assert release.status == "ready" and sum(release.row_counts.values()) == 12
    assert ">Retry</button>" not in client.get("/datasets/").content.decode()


def test_retry_through_the_api(
    short_leases: None, researcher: Any, outsider: Any, release: DatasetRelease
) -> None:
    _building_on_a_dead_worker(release)
    sweep_releases()
    url = f"/api/v1/releases/{release.public_id}/"
    api, _, _ = bearer(researcher, "write")
    detail = api.get(url).json()
    assert detail["status"] == "failed" and detail["error"] == services.RELEASE_LOST_ERROR
    reader, _, _ = bearer(researcher, "read")
    assert reader.post(url + "retry/").status_code == 403
    stranger, _, _ = bearer(outsider, "write")
    assert stranger.post(url + "retry/").status_code in (403, 404)
    assert APIClient().post(url + "retry/").status_code == 401
    answer = api.post(url + "retry/")
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    assert api.post(url + "retry/").status_code == 409  # already pending
