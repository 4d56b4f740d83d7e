from django.contrib import admin

from rating.models import LeaderboardSnapshot


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(admin.ModelAdmin):
    list_display = (
        "computed_at", "source", "category", "style_control", "trigger", "votes_counted",
        "flagged_excluded",
    )  # fmt: skip
    list_filter = ("source", "style_control", "trigger", "category")
    date_hierarchy = "computed_at"
    readonly_fields = [f.name for f in LeaderboardSnapshot._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # snapshots come from the recompute, never by hand
