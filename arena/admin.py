"""The operators' admin. Provider keys are never stored or shown: a provider names the
environment variable that holds its key, and the lists show whether that variable is set here (a
model whose key variable is unset is called without authorization, so both lists warn)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

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


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["battle", "winner", "turns", "flags", "created"]
    list_filter = ["winner"]
    date_hierarchy = "created"
    readonly_fields = ["battle", "winner", "voter", "turns", "created"]
