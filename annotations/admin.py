"""Operator screens: projects (with invitations), items (with responses), queue state, reviews."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotations import services
from annotations.models import (
    Annotation,
    Assignment,
    GenerationJob,
    Invitation,
    Item,
    ItemResponse,
    Project,
)


class InvitationInline(admin.TabularInline):
    model = Invitation
    extra = 1
    fields = ["email", "as_reviewer", "token", "accepted_by", "accepted_at"]
    readonly_fields = ["token", "accepted_by", "accepted_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "task_type",
        "k",
        "overlap",
        "gold_rate",
        "blind",
        "active",
        "created",
    ]
    list_filter = ["task_type", "active", "blind"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["annotators", "reviewers", "annotator_groups"]
    inlines = [InvitationInline]
    actions = ["expire_locks"]

    def save_model(self, request: HttpRequest, obj: Project, form, change: bool) -> None:
        if not change and obj.owner_id is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Return expired locks to the pool")
    def expire_locks(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        n = sum(services.assignments_expire(project=p) for p in queryset)
        self.message_user(request, f"{n} expired lock(s) released.")


class ItemResponseInline(admin.StackedInline):
    model = ItemResponse
    extra = 0
    fields = ["index", "text", "llm", "source_model"]
    raw_id_fields = ["llm"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["public_id", "project", "source", "is_gold", "taken", "submitted", "created"]
    list_filter = ["project", "source", "is_gold"]
    search_fields = ["prompt", "external_id"]
    readonly_fields = ["taken", "submitted"]
    inlines = [ItemResponseInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "project",
        "annotator",
        "state",
        "is_gold",
        "expires_at",
        "created",
    ]
    list_filter = ["project", "state", "is_gold"]
    raw_id_fields = ["item", "annotator"]
    readonly_fields = ["display_order"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "project",
        "annotator",
        "status",
        "review",
        "time_spent_ms",
        "submitted_at",
    ]
    list_filter = ["project", "status", "review"]
    raw_id_fields = ["item", "assignment", "annotator", "reviewed_by"]
    search_fields = ["comment"]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["public_id", "project", "state", "total", "done", "failed", "created"]
    list_filter = ["state"]
    readonly_fields = ["errors"]
