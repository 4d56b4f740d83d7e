from django.urls import path

from config.views import coming_soon

app_name = "arena"
urlpatterns = [
    path(
        "",
        coming_soon,
        {"title": "Arena", "what": "anonymous side-by-side battles between models"},
        name="index",
    ),
]
