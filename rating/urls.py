from django.urls import path

from config.views import coming_soon

app_name = "rating"
urlpatterns = [
    path(
        "",
        coming_soon,
        {"title": "Leaderboard", "what": "Bradley-Terry ratings with confidence intervals"},
        name="leaderboard",
    ),
]
