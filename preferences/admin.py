from django.contrib import admin

from preferences.models import ApiToken, DatasetRelease


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Operators can see and revoke tokens, never their secrets (only a hash is stored)."""

    list_display = [
        "name",
        "user",
        "prefix",
        "scope",
        "created",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["scope"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["public_id", "prefix", "created", "last_used_at"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):  # tokens are created by their owner, shown once
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        from django.utils import timezone

        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@admin.register(DatasetRelease)
class DatasetReleaseAdmin(admin.ModelAdmin):
    """Releases are built by the service and frozen once published: everything is read-only."""

    list_display = ["name", "version", "format", "file_format", "status", "public", "created"]
    list_filter = ["status", "format", "public"]
    search_fields = ["name", "version"]
    actions = ["publish_public", "publish_private"]

    def has_add_permission(self, request):  # created through the page or the API (a snapshot)
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def _publish(self, request, queryset, public: bool) -> None:
        from core.errors import ApplicationError
        from preferences import services

        for release in queryset:
            try:
                services.release_publish(user=request.user, release=release, public=public)
            except ApplicationError as exc:
                self.message_user(request, f"{release}: {exc.message}", level="error")

    @admin.action(description="Publish selected releases (public download)")
    def publish_public(self, request, queryset):
        self._publish(request, queryset, True)

    @admin.action(description="Publish selected releases (signed links only)")
    def publish_private(self, request, queryset):
        self._publish(request, queryset, False)
