from django.urls import path

from rating.api import views

urlpatterns = [
    path("", views.LeaderboardView.as_view(), name="leaderboard"),
    path("csv/", views.LeaderboardCSVView.as_view(), name="leaderboard-csv"),
    path("categories/", views.CategoriesView.as_view(), name="leaderboard-categories"),
    path("models/<slug:slug>/", views.ModelDetailView.as_view(), name="leaderboard-model"),
]
