"""The operators' admin. Provider keys are never stored or shown: a provider names the
environment variable that holds its key, and the lists show whether that variable is set here (a
model whose key variable is unset is called without authorization, so both lists warn)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse

from arena import sampling
from arena.models import LLM, Battle, Provider, Response, Turn, Vote


def missing_key_variables() -> dict[str, str]:
    """Provider name -> its key variable, for every provider whose variable is not set here."""
    return {
        provider.name: provider.api_key_env
        for provider in Provider.objects.exclude(api_key_env="").only("name", "api_key_env")
        if not provider.key_configured
    }


def _warn_missing_keys(request: HttpRequest) -> None:
    for name, variable in missing_key_variables().items():
        messages.warning(
            request,
            f"Provider {name}: the key variable {variable} is not set in this environment, so "
            f"its models are called without authorization. Set it and restart the workers.",
        )


class _WarnsMissingKeys(admin.ModelAdmin):
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            _warn_missing_keys(request)
        return super().changelist_view(request, extra_context)


@admin.register(Provider)
class ProviderAdmin(_WarnsMissingKeys):
    """Keys are never stored: the form asks for the NAME of the environment variable."""

    list_display = ["name", "kind", "base_url", "api_key_env", "key_status", "max_concurrency"]
    list_filter = ["kind"]
    search_fields = ["name", "base_url"]

    @admin.display(description="key set", boolean=True)
    def key_status(self, obj: Provider) -> bool | None:
        return obj.key_configured if obj.api_key_env else None


@admin.register(LLM)
class LLMAdmin(_WarnsMissingKeys):
    list_display = [
        "display_name",
        "slug",
        "organisation",
        "provider",
        "active",
        "use_in_arena",
        "use_in_annotation",
        "sampling_weight",
        "key_status",
    ]
    list_select_related = ["provider"]
    list_filter = ["active", "use_in_arena", "use_in_annotation", "provider"]
    list_editable = ["active", "sampling_weight"]
    search_fields = ["slug", "display_name", "organisation", "provider_model_id"]
    prepopulated_fields = {"slug": ["display_name"]}
    fieldsets = [
        (None, {"fields": ["display_name", "slug", "organisation", "license", "knowledge_cutoff"]}),
        (
            "Serving",
            {
                "fields": [
                    "provider",
                    "provider_model_id",
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "system_prompt",
                    "extra_body",
                ]
            },
        ),
        ("Use", {"fields": ["active", "use_in_arena", "use_in_annotation", "sampling_weight"]}),
    ]
    actions = ["activate", "deactivate"]

    @admin.display(description="key set", boolean=True)
    def key_status(self, obj: LLM) -> bool | None:
        """The provider's key variable is set here (empty when the provider needs no key)."""
        return obj.provider.key_configured if obj.provider.api_key_env else None

    @admin.action(description="Activate selected models")
    def activate(self, request: HttpRequest, queryset: QuerySet[LLM]) -> None:
        queryset.update(active=True)

    @admin.action(description="Deactivate selected models")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[LLM]) -> None:
        queryset.update(active=False)


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    fields = ["index", "prompt", "language", "has_code"]
    readonly_fields = fields
    can_delete = False


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ["public_id", "mode", "model_a", "model_b", "state", "language", "created"]
    list_filter = ["mode", "state", "language"]
    list_select_related = ["model_a", "model_b"]
    date_hierarchy = "created"
    readonly_fields = ["public_id", "voter", "ip_hash", "categories", "created", "updated"]
    inlines = [TurnInline]
    search_fields = ["public_id"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "side",
        "state",
        "error_kind",
        "completion_tokens",
        "ttft_ms",
        "latency_ms",
        "created",
    ]
    list_filter = ["state", "error_kind"]
    readonly_fields = [f.name for f in Response._meta.fields]


class VoteFlagFilter(admin.SimpleListFilter):
    """Votes by flag (why a vote is excluded from the leaderboard), any flag, or none."""

    title = "flag"
    parameter_name = "flag"
    ANY, NONE = "any", "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        flags = [(value, value.replace("_", " ")) for value in Vote.Flag.values]
        return [(self.ANY, "any flag (excluded)"), (self.NONE, "no flag (counted)"), *flags]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Vote]) -> QuerySet[Vote]:
        value = self.value()
        unflagged = Q(flags=[]) | Q(flags__isnull=True)
        if value == self.ANY:
            return queryset.exclude(unflagged)
        if value == self.NONE:
            return queryset.filter(unflagged)
        if value in Vote.Flag.values:
            return queryset.filter(_has_flag(value))
        return queryset


def _has_flag(flag: str) -> Q:
    """Votes whose flags list holds ``flag``: jsonb containment on PostgreSQL; elsewhere (no
    JSON containment lookup) the quoted flag in the stored JSON text."""
    if connection.vendor == "postgresql":
        return Q(flags__contains=[flag])
    return Q(flags__icontains=f'"{flag}"')


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["battle", "winner", "turns", "flags", "created"]
    list_filter = [VoteFlagFilter, "winner"]
    date_hierarchy = "created"
    readonly_fields = ["battle", "winner", "voter", "turns", "created"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The vote list, headed by a warning per model whose answers leak its identity."""
        excluding = getattr(settings, "ARENA_EXCLUDE_LEAKING_MODELS", False)
        for leak in sampling.leaking_models():
            action = (
                "It is left out of anonymous battles"
                if excluding
                else "Set ARENA_EXCLUDE_LEAKING_MODELS=1 to leave it out of anonymous battles"
            )
            messages.warning(
                request,
                f"Identity leak: {leak.slug} named itself in {leak.leaked} of its last "
                f"{leak.battles} anonymous battles ({leak.rate:.0%}); those votes are excluded. "
                f"{action}.",
            )
        return super().changelist_view(request, extra_context)
