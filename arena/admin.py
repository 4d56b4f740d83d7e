from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from arena.models import LLM, Battle, Provider, Response, Turn, Vote


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    """Keys are never stored: the form asks for the NAME of the environment variable."""

    list_display = ["name", "kind", "base_url", "api_key_env", "key_status", "max_concurrency"]
    list_filter = ["kind"]
    search_fields = ["name", "base_url"]

    @admin.display(description="key", boolean=True)
    def key_status(self, obj: Provider) -> bool | None:
        return obj.key_configured if obj.api_key_env else None


@admin.register(LLM)
class LLMAdmin(admin.ModelAdmin):
    list_display = [
        "display_name",
        "slug",
        "organisation",
        "provider",
        "active",
        "use_in_arena",
        "use_in_annotation",
        "sampling_weight",
    ]
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
