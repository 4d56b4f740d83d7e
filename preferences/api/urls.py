from django.urls import path

from preferences.api import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("tokens/", views.TokenListCreateView.as_view(), name="token-list"),
    path("tokens/<uuid:public_id>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
]
