from django.urls import path

from annotations.api import views

app_name = "annotations-api"
urlpatterns = [
    path("projects/", views.ProjectList.as_view(), name="projects"),
    path("projects/<slug:slug>/import/", views.ItemImport.as_view(), name="import"),
    path("projects/<slug:slug>/next/", views.Claim.as_view(), name="next"),
    path("projects/<slug:slug>/quality/", views.Quality.as_view(), name="quality"),
    path("projects/<slug:slug>/jobs/<uuid:job>/", views.JobDetail.as_view(), name="job"),
    path("tasks/<uuid:task>/", views.TaskDetail.as_view(), name="task"),
    path("tasks/<uuid:task>/draft/", views.TaskDraft.as_view(), name="task-draft"),
    path("tasks/<uuid:task>/submit/", views.TaskSubmit.as_view(), name="task-submit"),
    path("tasks/<uuid:task>/skip/", views.TaskSkip.as_view(), name="task-skip"),
    path("annotations/<uuid:annotation>/review/", views.Review.as_view(), name="review"),
]
