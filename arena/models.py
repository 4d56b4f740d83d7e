"""Arena data: the model registry (providers, LLMs) and battles, turns, responses and votes.

Rules that matter for correctness are database constraints, not only code: one vote per battle,
one response per side per turn, a model never fights itself, winners and states from fixed sets.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

# The expression classes are imported here too: the migrations name them as arena.models.*.
from arena.db_functions import ExportFunc as ExportFunc
from arena.db_functions import ExportJson as ExportJson
from arena.db_functions import ExportKey as ExportKey
from arena.db_functions import ScrubbedText as ScrubbedText
from arena.db_functions import stored_export_json, stored_export_key, stored_scrubbed
from arena.providers import Endpoint, GenerationParams, Timeouts

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def validate_env_name(value: str) -> None:
    if value and not ENV_NAME.match(value):
        raise ValidationError(
            "Give the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself."
        )


class Provider(models.Model):
    """Where models are served. The API key lives in an environment variable, never here."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        ANTHROPIC = "anthropic", "Anthropic Messages API"
        DEMO = "demo", "Built-in demo (synthetic)"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.URLField(max_length=500, blank=True)
    api_key_env = models.CharField(
        "API key environment variable",
        max_length=100,
        blank=True,
        validators=[validate_env_name],
        help_text="Name of the environment variable holding the key (the key is never stored).",
    )
    connect_timeout = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    first_token_timeout = models.FloatField(default=30.0, validators=[MinValueValidator(0.1)])
    total_timeout = models.FloatField(default=180.0, validators=[MinValueValidator(0.1)])
    max_concurrency = models.PositiveIntegerField(default=16)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_retries = models.PositiveSmallIntegerField(default=2)
    extra_headers = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="Kind-specific settings (demo: tokens_per_s, ...)."
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["openai", "anthropic", "demo"]), name="provider_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def key_configured(self) -> bool:
        return bool(self.api_key_env and os.environ.get(self.api_key_env))

    def to_endpoint(self) -> Endpoint:
        """Plain values for a provider client; reads the key from the environment at call time."""
        return Endpoint(
            kind=self.kind,  # type: ignore[arg-type]
            name=self.name,
            base_url=self.base_url,
            api_key=os.environ.get(self.api_key_env) if self.api_key_env else None,
            timeouts=Timeouts(
                connect_s=self.connect_timeout,
                first_token_s=self.first_token_timeout,
                total_s=self.total_timeout,
            ),
            max_concurrency=self.max_concurrency,
            rpm=self.requests_per_minute,
            max_retries=self.max_retries,
            extra_headers=dict(self.extra_headers or {}),
            options=dict(self.options or {}),
        )


class LLMQuerySet(models.QuerySet["LLM"]):
    def for_arena(self) -> LLMQuerySet:
        return self.filter(active=True, use_in_arena=True, sampling_weight__gt=0)

    def for_annotation(self) -> LLMQuerySet:
        return self.filter(active=True, use_in_annotation=True)


class LLM(models.Model):
    """A model that fights in the arena and/or answers annotation prompts."""

    slug = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200)
    organisation = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=100, blank=True)
    knowledge_cutoff = models.CharField(max_length=50, blank=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    provider_model_id = models.CharField(max_length=200)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    system_prompt = models.TextField(blank=True)
    extra_body = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    sampling_weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    use_in_arena = models.BooleanField(default=True)
    use_in_annotation = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    objects = LLMQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]
        verbose_name = "LLM"
        constraints = [
            models.CheckConstraint(condition=Q(sampling_weight__gte=0), name="llm_weight_nonneg")
        ]

    def __str__(self) -> str:
        return self.display_name

    def generation_params(self, *, seed: int | None = None) -> GenerationParams:
        return GenerationParams(
            model=self.provider_model_id,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            system_prompt=self.system_prompt or None,
            extra_body=dict(self.extra_body or {}),
            seed=seed,
        )


# --- battles -----------------------------------------------------------------------------------


class Battle(models.Model):
    class Mode(models.TextChoices):
        ANONYMOUS = "anonymous", "Anonymous"
        NAMED = "named", "Named side-by-side"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        VOTED = "voted", "Voted"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ANONYMOUS)
    model_a = models.ForeignKey(LLM, on_delete=models.PROTECT, related_name="+")
    model_b = models.ForeignKey(LLM, on_delete=models.PROTECT, related_name="+")
    voter = models.CharField(max_length=64, db_index=True, help_text="Hash of the voter session.")
    ip_hash = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    categories = models.JSONField(
        default=list, help_text="Leaderboard categories this battle counts in (always 'all')."
    )
    language = models.CharField(max_length=16, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(model_a=models.F("model_b")), name="battle_two_models"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["anonymous", "named"]), name="battle_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["active", "voted"]), name="battle_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"battle {self.public_id}"

    def model_for(self, side: str) -> LLM:
        return self.model_a if side == "a" else self.model_b


class Turn(models.Model):
    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    language = models.CharField(max_length=16, blank=True)
    has_code = models.BooleanField(default=False)
    prompt_chars = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    # Maintained by the database on every write, so exports never run the PII regexes.
    prompt_scrubbed = stored_scrubbed("prompt")
    prompt_json = stored_export_json("prompt")
    prompt_key = stored_export_key("prompt")

    class Meta:
        ordering = ["battle", "index"]
        constraints = [
            models.UniqueConstraint(fields=["battle", "index"], name="turn_unique_index"),
        ]

    def __str__(self) -> str:
        return f"turn {self.index} of {self.battle_id}"


class Response(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        STREAMING = "streaming", "Streaming"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    FINISHED = (State.DONE, State.FAILED, State.STOPPED)

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="responses")
    side = models.CharField(max_length=1, choices=[("a", "A"), ("b", "B")])
    text = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="Bumped by regenerate; frames of older attempts are ignored."
    )
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    provider_attempts = models.PositiveSmallIntegerField(default=0)
    # Style features for style-controlled ratings, computed once when the response completes.
    length = models.PositiveIntegerField(default=0)
    header_count = models.PositiveIntegerField(default=0)
    list_count = models.PositiveIntegerField(default=0)
    bold_count = models.PositiveIntegerField(default=0)
    leaks_identity = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    # When the current attempt's task was (last) handed to the queue: the lease sweeper hands a
    # pending attempt over again when no worker has taken it within a lease period.
    queued_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Maintained by the database on every write, so exports never run the PII regexes.
    text_scrubbed = stored_scrubbed("text")
    text_json = stored_export_json("text")

    class Meta:
        ordering = ["turn", "side"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "side"], name="response_one_per_side"),
            models.CheckConstraint(condition=Q(side__in=["a", "b"]), name="response_side_valid"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "streaming", "done", "failed", "stopped"]),
                name="response_state_valid",
            ),
        ]
        indexes = [
            # The lease sweeper reads the running responses every few seconds: a partial index
            # keeps that proportional to what is running, not to every answer ever given.
            models.Index(
                fields=["state"],
                condition=Q(state__in=["pending", "streaming"]),
                name="response_running",
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.side} of {self.turn_id}"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED


class Vote(models.Model):
    class Winner(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both are bad"

    class Flag(models.TextChoices):
        IDENTITY_LEAK = "identity_leak", "A response named a model or vendor"
        ANOMALOUS_VOTER = "anomalous_voter", "The voter's pattern looks anomalous"
        ERRORED_ROUND = "errored_round", "A response failed in this battle"
        MODERATED = "moderated", "Moderation flagged the conversation"
        POSITION_LOCKED = "position_locked", "The voter picks the same side whatever the answers"

    battle = models.OneToOneField(Battle, on_delete=models.CASCADE, related_name="vote")
    winner = models.CharField(max_length=8, choices=Winner.choices)
    voter = models.CharField(max_length=64, db_index=True)
    turns = models.PositiveSmallIntegerField()
    flags = models.JSONField(default=list, blank=True)
    # Style features of the whole conversation per side (sums over turns), copied from the
    # responses when the vote is cast, so style control reads one row per vote and never
    # aggregates turns and responses at recompute time.
    a_length = models.PositiveIntegerField(default=0)
    a_header_count = models.PositiveIntegerField(default=0)
    a_list_count = models.PositiveIntegerField(default=0)
    a_bold_count = models.PositiveIntegerField(default=0)
    b_length = models.PositiveIntegerField(default=0)
    b_header_count = models.PositiveIntegerField(default=0)
    b_list_count = models.PositiveIntegerField(default=0)
    b_bold_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=Q(winner__in=["a", "b", "tie", "both_bad"]), name="vote_winner_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"vote {self.winner} on {self.battle_id}"

    @property
    def is_flagged(self) -> bool:
        return bool(self.flags)

    STYLE_FIELDS = ("length", "header_count", "list_count", "bold_count")

    def set_style_from(self, responses: Sequence[Any]) -> None:
        """Sum each side's style features over the conversation's responses."""
        for name in self.STYLE_FIELDS:
            for side in "ab":
                total = sum(getattr(r, name) for r in responses if r.side == side)
                setattr(self, f"{side}_{name}", total)


class VoteCount(models.Model):
    """Aggregated anonymous votes per (category, ordered model pair, outcome).

    Kept current by the vote service in the vote's own transaction (``F()`` increments), so the
    plain Bradley-Terry leaderboard reads O(pairs) rows and never scans the votes. Flagged votes
    are not counted. The periodic full recompute rebuilds this table from the votes.
    """

    category = models.CharField(max_length=32)
    model_a = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="+")
    model_b = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=8, choices=Vote.Winner.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["category", "model_a", "model_b", "outcome"], name="votecount_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.model_a_id}-{self.model_b_id} {self.outcome} x{self.count}"


class PairSamplingWeight(models.Model):
    """Active-sampling weight per unordered pair, written by the rating recompute.

    The arena owns this table so that ``arena.sampling`` never imports ``rating``.
    """

    model_a = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="+")
    model_b = models.ForeignKey(LLM, on_delete=models.CASCADE, related_name="+")
    weight = models.FloatField()
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_a", "model_b"], name="pairweight_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model_a_id}-{self.model_b_id}: {self.weight:.4f}"


def model_identity_words(llm: LLM) -> list[str]:
    """Words that would reveal ``llm`` (used by the identity-leak filter)."""
    words: list[Any] = [llm.slug, llm.display_name, llm.organisation, llm.provider_model_id]
    return [w for w in words if isinstance(w, str) and len(w) >= 3]
