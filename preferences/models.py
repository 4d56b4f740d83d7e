from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A researcher's API token. Only the sha256 of the secret is stored; it is shown once."""

    SCOPE_READ = "read"
    SCOPE_WRITE = "write"
    SCOPES = [(SCOPE_READ, "read"), (SCOPE_WRITE, "read and write")]

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token.")
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=SCOPES, default=SCOPE_READ)
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )

    def allows(self, scope: str) -> bool:
        return scope == self.SCOPE_READ or self.scope == self.SCOPE_WRITE


class DatasetReleaseQuerySet(models.QuerySet["DatasetRelease"]):
    def visible_to(self, user: Any) -> DatasetReleaseQuerySet:
        """Researchers see every release; anyone else only the public ones."""
        if user.is_authenticated and user.has_perm("preferences.access_datasets"):
            return self
        return self.filter(public=True, status=DatasetRelease.Status.PUBLISHED)


class DatasetRelease(models.Model):
    """A reproducible export: cut from a snapshot, written once, immutable once published.

    ``max_vote_id`` / ``max_annotation_id`` are the snapshot: a rebuild reads only rows up to
    them, in a fixed order, so it gives the same bytes and checksums.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        PUBLISHED = "published", "Published"

    class FileFormat(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        JSONL_GZ = "jsonl.gz", "JSONL (gzip)"
        PARQUET = "parquet", "Parquet"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.SlugField(max_length=100)
    version = models.CharField(max_length=32)
    format = models.CharField(max_length=32)
    file_format = models.CharField(max_length=10, choices=FileFormat.choices)
    filters = models.JSONField(default=dict)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(default=0)
    row_counts = models.JSONField(default=dict, blank=True)
    files = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=500, blank=True)
    max_vote_id = models.PositiveBigIntegerField(default=0)
    max_annotation_id = models.PositiveBigIntegerField(default=0)
    public = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="dataset_releases",
    )
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = DatasetReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        permissions = [("access_datasets", "Can browse pairs and build dataset releases")]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="release_name_version"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "building", "ready", "failed", "published"]
                ),
                name="release_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="published") | models.Q(published_at__isnull=False),
                name="release_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.READY, self.Status.PUBLISHED, self.Status.FAILED)

    @property
    def is_downloadable(self) -> bool:
        return self.status in (self.Status.READY, self.Status.PUBLISHED)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values()) if self.row_counts else 0

    def file_info(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.files if f["name"] == name), None)
