"""URL wiring: each app owns its namespace; the API lives under /api/v1/."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import health, views

api_v1 = [
    path("annotations/", include("annotations.api.urls")),
    path("", include("preferences.api.urls")),
    path("leaderboard/", include("rating.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("arena/", include("arena.urls")),
    path("leaderboard/", include("rating.urls")),
    path("annotate/", include("annotations.urls")),
    path("datasets/", include("preferences.urls")),
    path("api/v1/", include((api_v1, "api"))),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("", include("django_prometheus.urls")),
]

admin.site.site_header = "Preference Arena operations"
admin.site.site_title = "Preference Arena"

handler404 = "core.api.not_found"
handler500 = "core.http.server_error"
