from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("new/", views.project_new, name="project-new"),
    path("task/<uuid:public_id>/", views.task, name="task"),
    path("invite/<uuid:token>/", views.invitation, name="invitation"),
    path("p/<slug:slug>/next/", views.project_next, name="next"),
    path("p/<slug:slug>/", views.dashboard, name="dashboard"),
    path("p/<slug:slug>/items/", views.items, name="items"),
    path("p/<slug:slug>/items/<uuid:public_id>/", views.item_detail, name="item"),
    path("p/<slug:slug>/review/", views.review, name="review"),
    path("p/<slug:slug>/import/", views.import_items, name="import"),
    path("p/<slug:slug>/generate/", views.generate, name="generate"),
    path("p/<slug:slug>/invitations/", views.invitations, name="invitations"),
    path("p/<slug:slug>/jobs/<uuid:public_id>/", views.job, name="job"),
]
