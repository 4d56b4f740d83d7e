from django.urls import path

from arena import views

app_name = "arena"
urlpatterns = [
    path("", views.index, name="index"),
    path("consent/", views.consent, name="consent"),
    path("b/<str:battle_id>/", views.battle, name="battle"),
    path("b/<str:battle_id>/turn/", views.turn, name="battle-turn"),
    path("b/<str:battle_id>/vote/", views.vote, name="battle-vote"),
    path(
        "b/<str:battle_id>/r/<str:response_id>/regenerate/",
        views.regenerate,
        name="response-regenerate",
    ),
    path("b/<str:battle_id>/r/<str:response_id>/stop/", views.stop, name="response-stop"),
]
