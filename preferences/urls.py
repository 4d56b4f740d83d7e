from django.urls import path

from preferences import views

app_name = "preferences"
urlpatterns = [
    path("", views.release_list, name="release-list"),
    path("releases/<uuid:public_id>/", views.release_detail, name="release-detail"),
    path("releases/<uuid:public_id>/retry/", views.release_retry, name="release-retry"),
    path("files/<str:token>/<str:name>", views.file_signed, name="file-signed"),
    path("public/<uuid:public_id>/<str:name>", views.file_public, name="file-public"),
    path("settings/tokens/", views.token_settings, name="tokens"),
    path("settings/tokens/<uuid:public_id>/revoke/", views.token_revoke, name="token-revoke"),
]
