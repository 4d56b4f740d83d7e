from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db import connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import leases
from core.background import enqueue
from core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from preferences.exports import (
    FILE_FORMATS,
    FORMATS,
    ExportOptions,
    dataset_card,
    write_card_and_manifest,
    write_splits,
)
from preferences.models import ApiToken, DatasetRelease
from preferences.selectors import PairFilters, count_pairs_estimate, snapshot_ids

TOKEN_PREFIX = "pa_"
MAX_TOKENS_PER_USER = 50

log = logging.getLogger(__name__)


def token_create(
    *, user: AbstractBaseUser, name: str, scope: str = ApiToken.SCOPE_READ, days: int | None = 90
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the secret, which is never retrievable again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApplicationError("A token needs a name of 1-100 characters.", code="invalid_name")
    if scope not in dict(ApiToken.SCOPES):
        raise ApplicationError("Scope must be 'read' or 'write'.", code="invalid_scope")
    if days is not None and not 1 <= days <= 366:
        raise ApplicationError("Expiry must be 1-366 days, or none.", code="invalid_expiry")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        if ApiToken.objects.filter(user=user).usable().count() >= MAX_TOKENS_PER_USER:
            raise ApplicationError("Too many active tokens; revoke one first.", code="too_many")
        token = ApiToken.objects.create(
            user=user,
            name=name,
            scope=scope,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            digest=ApiToken.hash_secret(secret),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
    return token, secret


def token_revoke(*, user: AbstractBaseUser, public_id: str) -> ApiToken:
    # Conditional update: revoking twice keeps the first revocation time.
    updated = ApiToken.objects.filter(
        user=user, public_id=public_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = ApiToken.objects.filter(user=user, public_id=public_id).first()
    if token is None:
        raise NotFound("No such token.")
    del updated
    return token


# --- dataset releases ----------------------------------------------------------------------------

DOWNLOAD_SALT = "preferences.release-download"
DEFAULT_LINK_SECONDS = 24 * 3600
PROGRESS_SECONDS = 0.5


def releases_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "datasets"


def release_dir(release: DatasetRelease) -> Path:
    return releases_root() / str(release.public_id)


def _require_researcher(user: Any) -> None:
    if not (user.is_authenticated and user.has_perm("preferences.access_datasets")):
        raise PermissionDenied("You do not have access to preference datasets.")


def release_create(
    *,
    user: Any,
    name: str,
    version: str,
    format: str,
    file_format: str = "jsonl",
    filters: PairFilters | None = None,
    options: ExportOptions | None = None,
) -> DatasetRelease:
    """Record a release cut from the current snapshot and enqueue its build after commit."""
    _require_researcher(user)
    filters = filters or PairFilters()
    fmt = FORMATS.get(format)
    if fmt is None:
        raise ApplicationError(f"Unknown format {format!r}.", code="invalid_format")
    if file_format not in FILE_FORMATS:
        raise ApplicationError(f"Unknown file format {file_format!r}.", code="invalid_format")
    if not fmt.ties and (filters.include_ties or filters.include_both_bad):
        raise ApplicationError(
            f"The {format} format has only chosen/rejected: it cannot express ties or "
            "both-bad votes. Use arena_battles or rankings, or leave them out.",
            code="format_cannot_express_ties",
        )
    options = ExportOptions(**{**(options or ExportOptions()).__dict__, "format": format})
    options = ExportOptions(**{**options.__dict__, "file_format": file_format})
    if not 0.0 <= options.test_fraction < 1.0:
        raise ApplicationError("test_fraction must be in [0, 1).", code="invalid_split")
    max_vote_id, max_annotation_id = snapshot_ids()
    with transaction.atomic():
        if DatasetRelease.objects.filter(name=name, version=version).exists():
            raise Conflict(f"Release {name} {version} already exists; releases never change.")
        release = DatasetRelease.objects.create(
            name=name,
            version=version,
            format=format,
            file_format=file_format,
            filters=filters.to_json(),
            options=options.to_json(),
            max_vote_id=max_vote_id,
            max_annotation_id=max_annotation_id,
            created_by=user,
        )
        enqueue("preferences.tasks.build_release", release.pk)
    return release


def release_rebuild(*, user: Any, release: DatasetRelease) -> DatasetRelease:
    """Build an unpublished release again from its own snapshot (same bytes if data unchanged)."""
    _require_researcher(user)
    with transaction.atomic():
        updated = DatasetRelease.objects.filter(
            pk=release.pk, status__in=[DatasetRelease.Status.READY, DatasetRelease.Status.FAILED]
        ).update(status=DatasetRelease.Status.PENDING, progress=0.0, rows_done=0, error="")
        if not updated:
            raise Conflict("Only a ready or failed, unpublished release can be rebuilt.")
        enqueue("preferences.tasks.build_release", release.pk)
    release.refresh_from_db()
    return release


def release_publish(*, user: Any, release: DatasetRelease, public: bool) -> DatasetRelease:
    """Freeze a ready release (operators only); ``public`` lets anyone download it."""
    if not user.is_staff:
        raise PermissionDenied("Only operators publish releases.")
    # Conditional update: only a READY release moves, so a build in flight is never frozen.
    updated = DatasetRelease.objects.filter(
        pk=release.pk, status=DatasetRelease.Status.READY
    ).update(status=DatasetRelease.Status.PUBLISHED, public=public, published_at=timezone.now())
    if not updated:
        raise Conflict("Only a ready release can be published; a published one never changes.")
    release.refresh_from_db()
    return release


def _export_options(release: DatasetRelease) -> ExportOptions:
    return ExportOptions(
        format=release.format, file_format=release.file_format, **(release.options or {})
    )


def _release_filters(release: DatasetRelease) -> PairFilters:
    return PairFilters.from_json(
        release.filters,
        max_vote_id=release.max_vote_id,
        max_annotation_id=release.max_annotation_id,
    )


@contextlib.contextmanager
def _streaming_read(save: Callable[[int], None]) -> Iterator[Callable[[int], None]]:
    """Where the rows are read, and how progress gets out while they are.

    On PostgreSQL outside any transaction (a worker), the read runs in one transaction so the
    server-side cursor streams (a cursor outside a transaction is WITH HOLD: PostgreSQL would
    materialise the whole result first), and progress is written by a reporter thread on its
    own connection, so the page sees it while the read transaction is still open. Elsewhere
    (SQLite, or already inside a transaction) progress is written inline.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield save
        return
    latest = [0]
    stop = threading.Event()

    def report() -> None:
        try:
            last = 0
            while not stop.wait(PROGRESS_SECONDS):
                if latest[0] != last:
                    last = latest[0]
                    save(last)
        finally:
            connections.close_all()

    reporter = threading.Thread(target=report, name="release-progress", daemon=True)
    reporter.start()
    try:

        def publish(n: int) -> None:
            latest[0] = n

        publish.threaded = True  # type: ignore[attr-defined]  # safe while a COPY runs
        with transaction.atomic():
            yield publish
    finally:
        stop.set()
        reporter.join(timeout=10)


class BuildLost(Exception):
    """This build no longer holds its release: the sweeper ended it (its lease lapsed)."""


RELEASE_LOST_ERROR = "The worker building this release stopped; retry it."


def release_lease_key(release_id: int) -> str:
    """The lease a build holds on its release while it runs (rules in ``core/leases.py``)."""
    return leases.lease_key("preferences.release", release_id)


def _lease_seconds() -> float:
    return float(getattr(settings, "PREFERENCES_RELEASE_LEASE_SECONDS", 30.0))


def work_dir(public_id: object, started_at: datetime) -> Path:
    """The temporary directory of the build started at ``started_at`` (one per attempt, so a
    swept build that wakes up never writes into its successor's)."""
    stamp = int(started_at.timestamp() * 1_000_000)
    return releases_root() / f"{public_id}.{stamp}.tmp"


def _held(release_id: int, started_at: datetime) -> QuerySet[DatasetRelease]:
    """The release while the build started at ``started_at`` still holds it: the condition of
    every write of that build and of the sweeper's, so exactly one of them ends it."""
    return DatasetRelease.objects.filter(
        pk=release_id, status=DatasetRelease.Status.BUILDING, started_at=started_at
    )


def _throttled(progress: Callable[[int], None]) -> Callable[[int], None]:
    """Test-only (``PREFERENCES_RELEASE_TEST_ROW_DELAY``): sleep per row, so a fault test can
    kill a build mid-way."""
    delay = float(getattr(settings, "PREFERENCES_RELEASE_TEST_ROW_DELAY", 0.0))
    if not delay:
        return progress

    def slow(n: int) -> None:
        time.sleep(delay)
        progress(n)

    slow.threaded = getattr(progress, "threaded", False)  # type: ignore[attr-defined]
    return slow


def release_build(*, release_id: int) -> DatasetRelease | None:
    """Write a release's files, card and manifest; idempotent and safe to retry.

    Takes the release's lease, then claims it with a conditional UPDATE (pending -> building,
    ``started_at`` naming this attempt), so two workers handed the same job never both write.
    None when another holds the lease or the release is not pending. Every later write is
    conditional on the release still being ``building`` with this ``started_at``: when this
    worker dies the sweeper (:func:`releases_sweep`) ends it as failed, and a build that was
    only slow finds that out at its next progress write and drops its work. Files go to a
    temporary directory that replaces the final one only when done.
    """
    lease = leases.acquire(release_lease_key(release_id), ttl=_lease_seconds())
    if lease is None:
        return None
    try:
        started_at = timezone.now()
        claimed = DatasetRelease.objects.filter(
            pk=release_id, status=DatasetRelease.Status.PENDING
        ).update(
            status=DatasetRelease.Status.BUILDING,
            started_at=started_at,
            progress=0.0,
            rows_done=0,
            error="",
        )
        if not claimed:
            return None
        return _build(release_id, started_at, lease)
    finally:
        leases.release(lease)


def _build(release_id: int, started_at: datetime, lease: leases.Lease) -> DatasetRelease | None:
    release = DatasetRelease.objects.get(pk=release_id)
    filters = _release_filters(release)
    options = _export_options(release)
    total = count_pairs_estimate(filters)
    _held(release_id, started_at).update(rows_total=total)
    work = work_dir(release.public_id, started_at)
    shutil.rmtree(work, ignore_errors=True)
    lost = threading.Event()

    def save_progress(n: int) -> None:
        saved = _held(release_id, started_at).update(
            rows_done=n, progress=min(0.99, n / total) if total else 0.0
        )
        if not saved or lease.lost:
            lost.set()  # the build loop stops at its next progress call

    try:
        with _streaming_read(save_progress) as publish:

            def progress(n: int) -> None:
                publish(n)
                if lost.is_set():
                    raise BuildLost

            progress.threaded = getattr(publish, "threaded", False)  # type: ignore[attr-defined]
            throttled = _throttled(progress)
            every = 1 if throttled is not progress else 5000
            result = write_splits(work, filters, options, progress=throttled, progress_every=every)
        card = dataset_card(
            name=release.name,
            version=release.version,
            options=options,
            filters=release.filters,
            snapshot={
                "max_vote_id": release.max_vote_id,
                "max_annotation_id": release.max_annotation_id,
            },
            result=result,
            created=release.created.isoformat(),
        )
        write_card_and_manifest(work, card, result)
        _finish(release, started_at, work, result)
    except BuildLost:
        shutil.rmtree(work, ignore_errors=True)
        log.warning("release build dropped: it was swept", extra={"release": release_id})
        return None
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        _held(release_id, started_at).update(
            status=DatasetRelease.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            finished_at=timezone.now(),
        )
        raise
    release.refresh_from_db()
    return release


def _finish(release: DatasetRelease, started_at: datetime, work: Path, result: Any) -> None:
    """Move the files in place and mark the release ready, under the release's row lock and
    only while this build still holds it (else :class:`BuildLost`)."""
    with transaction.atomic():
        if not _held(release.pk, started_at).select_for_update().exists():
            raise BuildLost
        final = release_dir(release)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        _held(release.pk, started_at).update(
            status=DatasetRelease.Status.READY,
            progress=1.0,
            rows_done=result.rows_read,
            row_counts=result.row_counts,
            files=[f.to_json() for f in result.files],
            finished_at=timezone.now(),
            error="",
        )


def releases_sweep() -> list[str]:
    """End as failed every release in ``building`` whose build's lease lapsed (its worker
    died), with :data:`RELEASE_LOST_ERROR`, and remove that build's temporary directory.
    Returns the public ids ended; nothing is judged while the lease store is younger than a
    lease period (it may just have lost its memory)."""
    ttl = _lease_seconds()
    if leases.store_age() < ttl:
        return []
    # The lease is taken before the claim: a build claimed less than a TTL ago is alive.
    cutoff = timezone.now() - timedelta(seconds=ttl)
    building = list(
        DatasetRelease.objects.filter(
            status=DatasetRelease.Status.BUILDING, started_at__lt=cutoff
        ).values_list("pk", "public_id", "started_at")
    )
    live = leases.alive([release_lease_key(pk) for pk, _, _ in building])
    ended = []
    for (pk, public_id, started_at), held in zip(building, live, strict=True):
        if held:
            continue
        if _held(pk, started_at).update(
            status=DatasetRelease.Status.FAILED,
            error=RELEASE_LOST_ERROR,
            finished_at=timezone.now(),
        ):
            shutil.rmtree(work_dir(public_id, started_at), ignore_errors=True)
            log.warning("release build ended: its worker was lost", extra={"release": pk})
            ended.append(str(public_id))
    return ended


# --- download links ------------------------------------------------------------------------


def release_file_path(release: DatasetRelease, name: str) -> Path:
    if not release.is_downloadable or release.file_info(name) is None:
        raise NotFound("No such file in this release.")
    path = release_dir(release) / name
    if not path.is_file():
        raise NotFound("The file is missing from storage.")
    return path


def release_signed_token(release: DatasetRelease, name: str) -> str:
    return signing.dumps({"r": str(release.public_id), "f": name}, salt=DOWNLOAD_SALT)


def release_resolve_token(token: str, name: str, *, max_age: int = DEFAULT_LINK_SECONDS) -> Path:
    """The file a signed link points at; refuses tampered, expired or mismatched links."""
    try:
        data = signing.loads(token, salt=DOWNLOAD_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise PermissionDenied("This download link has expired.", code="link_expired") from exc
    except signing.BadSignature as exc:
        raise PermissionDenied("This download link is not valid.", code="bad_link") from exc
    if data.get("f") != name:
        raise PermissionDenied("This download link is for another file.", code="bad_link")
    release = DatasetRelease.objects.filter(public_id=data.get("r")).first()
    if release is None:
        raise NotFound("No such release.")
    return release_file_path(release, name)
