"""Annotation projects, items with K responses, queue assignments (locks), annotations, jobs.

Invariants held by the database, not only by code:
- one annotation per (item, annotator) and one assignment per (item, annotator);
- ``Item.taken`` (live assignments: unexpired active + submitted) never exceeds the overlap: it is
  only raised by a conditional ``UPDATE ... WHERE taken < overlap`` (see ``services.queue``);
- states come from fixed sets (check constraints).

A ranking is stored as groups of response indices, best first; a group of several indices is a
tie: ``[[2], [0, 1]]`` means response 2 is best and responses 0 and 1 are tied behind it.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from arena.models import LLM

MAX_K = 10
LABEL_KINDS = ("likert", "yesno")
LABEL_KEYS = {"name", "kind", "label", "min", "max", "help"}
MAX_LABEL_NAME_CHARS = 40
MAX_LIKERT_POINTS = 21


def validate_label_schema(value: Any) -> None:
    """A list of ``{"name", "kind": "likert"|"yesno", "label"?, "min"?, "max"?, "help"?}``.

    Names are unique short identifiers; a likert label has integer ``min`` (default 1) and
    ``max``, at most 21 points; a yes/no label has neither. Raises ``ValidationError`` naming the
    first bad label.
    """
    if not isinstance(value, list):
        raise ValidationError("The label schema must be a JSON list of label definitions.")
    seen: set[str] = set()
    for i, spec in enumerate(value):
        where = f"label {i + 1}"
        name = _label_name(spec, where)
        if name in seen:
            raise ValidationError(f"{where}: duplicate name {name!r}.")
        seen.add(name)
        _check_label_kind(spec, where)
        for key in ("label", "help"):
            if key in spec and not isinstance(spec[key], str):
                raise ValidationError(f"{where}: {key!r} must be text.")


def _label_name(spec: Any, where: str) -> str:
    if not isinstance(spec, dict):
        raise ValidationError(f"{where}: must be an object.")
    unknown = set(spec) - LABEL_KEYS
    if unknown:
        raise ValidationError(f"{where}: unknown keys {sorted(unknown)}.")
    name = spec.get("name")
    if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_LABEL_NAME_CHARS:
        raise ValidationError(f"{where}: 'name' must be a short identifier.")
    return name


def _check_label_kind(spec: dict[str, Any], where: str) -> None:
    kind = spec.get("kind")
    if kind not in LABEL_KINDS:
        raise ValidationError(f"{where}: 'kind' must be one of {', '.join(LABEL_KINDS)}.")
    if kind == "likert":
        lo, hi = spec.get("min", 1), spec.get("max")
        if not isinstance(lo, int) or not isinstance(hi, int) or isinstance(hi, bool):
            raise ValidationError(f"{where}: a likert label needs integer 'min' and 'max'.")
        if not (hi > lo and hi - lo < MAX_LIKERT_POINTS):
            raise ValidationError(f"{where}: 'max' must be above 'min' (at most 21 points).")
    elif "min" in spec or "max" in spec:
        raise ValidationError(f"{where}: a yes/no label takes no 'min'/'max'.")


def label_bounds(spec: dict[str, Any]) -> tuple[int, int]:
    return (int(spec.get("min", 1)), int(spec["max"])) if spec["kind"] == "likert" else (0, 1)


class Project(models.Model):
    class TaskType(models.TextChoices):
        RANK = "rank", "Rank K responses"
        PAIRWISE = "pairwise", "Pairwise choice"
        RATE = "rate", "Rate each response"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown beside every task.")
    task_type = models.CharField(max_length=10, choices=TaskType.choices, default=TaskType.RANK)
    label_schema = models.JSONField(
        default=list, blank=True, validators=[validate_label_schema], help_text=(
            'e.g. [{"name": "helpfulness", "kind": "likert", "min": 1, "max": 7}, '
            '{"name": "harmless", "kind": "yesno"}]'
        ),
    )  # fmt: skip
    k = models.PositiveSmallIntegerField(
        "responses per item", default=2, validators=[MinValueValidator(2), MaxValueValidator(MAX_K)]
    )
    overlap = models.PositiveSmallIntegerField(
        "annotators per item", default=3, validators=[MinValueValidator(1)]
    )
    lock_ttl_seconds = models.PositiveIntegerField(default=1800, validators=[MinValueValidator(30)])
    gold_rate = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of tasks that are gold items (0 to 1).",
    )  # fmt: skip
    blind = models.BooleanField(
        default=True,
        help_text="Hide source models and shuffle the response order per annotator.",
    )
    active = models.BooleanField(default=True)
    annotator_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="annotation_projects"
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="reviewed_annotation_projects"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=Q(task_type__in=["rank", "pairwise", "rate"]), name="project_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate"
            ),
            models.CheckConstraint(
                condition=Q(k__gte=2) & Q(overlap__gte=1), name="project_k_overlap"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.task_type == self.TaskType.PAIRWISE and self.k != 2:
            raise ValidationError({"k": "A pairwise project has exactly 2 responses per item."})
        if self.task_type == self.TaskType.RATE and not any(
            s.get("kind") == "likert" for s in self.label_schema or [] if isinstance(s, dict)
        ):
            raise ValidationError({"label_schema": "A rating project needs a likert label."})

    @property
    def labels(self) -> list[dict[str, Any]]:
        return list(self.label_schema or [])

    def new_display_order(self) -> list[int]:
        """Response indices in the order a new assignment shows them (shuffled when blind)."""
        order = list(range(self.k))
        if self.blind:
            random.shuffle(order)
        return order


class Invitation(models.Model):
    """A one-use link that makes whoever opens it (logged in) an annotator of the project."""

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True)
    as_reviewer = models.BooleanField(default=False)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"invitation to {self.project_id} ({self.email or 'link'})"


class Item(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded"
        GENERATED = "generated", "Generated"
        ARENA = "arena", "Arena battle"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    conversation = models.JSONField(
        default=list, blank=True, help_text="Earlier turns [{role, content}] before the prompt."
    )
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    is_gold = models.BooleanField(default=False)
    gold_ranking = models.JSONField(null=True, blank=True)
    taken = models.PositiveIntegerField(
        default=0, help_text="Live assignments: unexpired active plus submitted."
    )
    submitted = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "is_gold", "taken"], name="item_queue_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~Q(external_id=""),
                name="item_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_ranking__isnull=False), name="item_gold_answer"
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.public_id}"


class ItemResponse(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    index = models.PositiveSmallIntegerField()
    text = models.TextField()
    llm = models.ForeignKey(LLM, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_model = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["item", "index"]
        constraints = [
            models.UniqueConstraint(fields=["item", "index"], name="itemresponse_unique_index")
        ]

    def __str__(self) -> str:
        return f"response {self.index} of {self.item_id}"

    @property
    def model_name(self) -> str:
        return self.llm.display_name if self.llm_id and self.llm else self.source_model


class AssignmentQuerySet(models.QuerySet["Assignment"]):
    def stale(self, now: Any = None) -> AssignmentQuerySet:
        return self.filter(state=Assignment.State.ACTIVE, expires_at__lte=now or timezone.now())

    def live_active(self, now: Any = None) -> AssignmentQuerySet:
        return self.filter(state=Assignment.State.ACTIVE, expires_at__gt=now or timezone.now())


class Assignment(models.Model):
    """One annotator's hold on one item (the queue's lock), then its outcome."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotation_assignments"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    is_gold = models.BooleanField(default=False)
    display_order = models.JSONField(default=list, help_text="Response indices as shown.")
    expires_at = models.DateTimeField()
    created = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["annotator", "project", "state"], name="assignment_mine_idx"),
            models.Index(fields=["state", "expires_at"], name="assignment_expiry_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_one_per_item"),
            models.CheckConstraint(
                condition=Q(state__in=["active", "submitted", "skipped", "expired"]),
                name="assignment_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.public_id} ({self.state})"

    def is_live(self, now: Any = None) -> bool:
        return self.state == self.State.ACTIVE and self.expires_at > (now or timezone.now())


class Annotation(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"

    class Review(models.TextChoices):
        PENDING = "pending", "Not reviewed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Flag(models.TextChoices):
        NONE_ACCEPTABLE = "none_acceptable", "None of the responses is acceptable"
        HARMFUL = "harmful", "Harmful content"
        PII = "pii", "Contains personal data"
        BAD_PROMPT = "bad_prompt", "The prompt is broken or unanswerable"
        DUPLICATES = "duplicates", "Responses are (near) duplicates"

    class SkipReason(models.TextChoices):
        UNSURE = "unsure", "Not sure / outside my expertise"
        BAD_ITEM = "bad_item", "The item is broken"
        LANGUAGE = "language", "I don't read this language"
        OTHER = "other", "Other"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="annotation"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    ranking = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True, help_text="{response index: {label: v}}")
    flags = models.JSONField(default=list, blank=True)
    comment = models.TextField(blank=True, max_length=5000)
    time_spent_ms = models.PositiveIntegerField(default=0)
    skip_reason = models.CharField(max_length=20, blank=True)
    review = models.CharField(max_length=10, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="annotation_one_per_item"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "submitted", "skipped"]),
                name="annotation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(review__in=["pending", "approved", "rejected"]),
                name="annotation_review_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"annotation {self.public_id} ({self.status})"


class GenerationJob(models.Model):
    """Items generated from registered models: one background task per prompt."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_jobs")
    prompts = models.JSONField(default=list)
    llm_ids = models.JSONField(default=list, help_text="LLM ids in response order.")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"generation {self.public_id} {self.done + self.failed}/{self.total}"

    @property
    def percent(self) -> int:
        return int(100 * (self.done + self.failed) / self.total) if self.total else 100
