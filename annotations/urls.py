from django.urls import path

from config.views import coming_soon

app_name = "annotations"
urlpatterns = [
    path(
        "",
        coming_soon,
        {"title": "Annotate", "what": "ranking tasks for annotators"},
        name="queue",
    ),
]
