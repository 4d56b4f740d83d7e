from django.urls import path

from rating import views

app_name = "rating"
urlpatterns = [
    path("", views.leaderboard, name="leaderboard"),
]
