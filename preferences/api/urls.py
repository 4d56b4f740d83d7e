from django.urls import path

from preferences.api import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("tokens/", views.TokenListCreateView.as_view(), name="token-list"),
    path("tokens/<uuid:public_id>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("pairs/", views.PairListView.as_view(), name="pair-list"),
    path("battles/", views.BattleListView.as_view(), name="battle-list"),
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("releases/", views.ReleaseListCreateView.as_view(), name="release-list"),
    path("releases/<uuid:public_id>/", views.ReleaseDetailView.as_view(), name="release-detail"),
    path(
        "releases/<uuid:public_id>/publish/",
        views.ReleasePublishView.as_view(),
        name="release-publish",
    ),
    path(
        "releases/<uuid:public_id>/retry/", views.ReleaseRetryView.as_view(), name="release-retry"
    ),
    path(
        "releases/<uuid:public_id>/download/<str:name>",
        views.ReleaseDownloadView.as_view(),
        name="release-download",
    ),
]
