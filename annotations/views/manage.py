"""Pages for managing a project: creating it, invitation links, loading items (upload,
generation by registered models, sampling arena battles) and a generation job's progress."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from annotations import services
from annotations.forms import GenerateForm, ImportForm, InvitationForm, ProjectForm
from annotations.models import GenerationJob, Invitation
from annotations.views.common import app_errors, project_for
from core.errors import ApplicationError


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest) -> HttpResponse:
    """Create a project (staff, or users with the ``add_project`` permission; others get 404)."""
    if not services.may_create_projects(request.user):
        raise Http404
    form = ProjectForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                project = services.project_create(
                    owner=request.user,
                    **{name: form.cleaned_data[name] for name in ProjectForm.Meta.fields},
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, f"Created “{project.name}”. Invite annotators, then load items."
                )
                return redirect("annotations:invitations", slug=project.slug)
        status = 400
    return render(request, "annotations/project_new.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@app_errors
def invitations(request: HttpRequest, slug: str) -> HttpResponse:
    """One-use invitation links for annotators and reviewers (managers only)."""
    project, _ = project_for(request, slug, need="manager")
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        inv = services.invitation_create(project=project, user=request.user, **form.cleaned_data)
        messages.success(request, "Invitation link created: copy it and send it.")
        return redirect(f"{reverse('annotations:invitations', args=[slug])}#inv-{inv.token}")
    rows = [
        {
            "inv": inv,
            "url": request.build_absolute_uri(reverse("annotations:invitation", args=[inv.token])),
        }
        for inv in Invitation.objects.filter(project=project)
        .select_related("accepted_by")
        .order_by("-created")[:200]
    ]
    return render(
        request,
        "annotations/invitations.html",
        {"project": project, "form": form, "rows": rows},
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_items(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a JSONL or CSV file; a bad file is shown again with its errors line by line."""
    project, _ = project_for(request, slug, need="manager")
    form = ImportForm(request.POST or None, request.FILES or None)
    errors: list[dict[str, Any]] = []
    status = 200
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            n = services.items_import(
                project=project,
                user=request.user,
                content=upload.read(),
                fmt=form.cleaned_data["format"] or form.guess_format(upload.name),
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            errors = exc.extra.get("errors", [])
            status = 400
        else:
            messages.success(request, f"Imported {n} items.")
            return redirect("annotations:dashboard", slug=slug)
    return render(
        request,
        "annotations/import.html",
        {"project": project, "form": form, "errors": errors},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
@app_errors
def generate(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a generation job, or (``action=sample-arena``) sample items from arena battles."""
    project, _ = project_for(request, slug, need="manager")
    form = GenerateForm(request.POST or None, k=project.k)
    if request.method == "POST":
        if request.POST.get("action") == "sample-arena":
            n = services.arena_sample(
                project=project, user=request.user, count=int(request.POST.get("count") or 50)
            )
            messages.success(request, f"Sampled {n} items from arena battles.")
            return redirect("annotations:dashboard", slug=slug)
        if form.is_valid():
            job = services.generation_start(
                project=project,
                user=request.user,
                prompts=form.cleaned_data["prompts"],
                llms=list(form.cleaned_data["models"]),
            )
            return redirect("annotations:job", slug=slug, public_id=job.public_id)
    return render(request, "annotations/generate.html", {"project": project, "form": form})


@login_required
def job(request: HttpRequest, slug: str, public_id: Any) -> HttpResponse:
    """A generation job's progress; htmx polls get only the progress fragment."""
    project, _ = project_for(request, slug, need="manager")
    job = get_object_or_404(GenerationJob, project=project, public_id=public_id)
    template = "annotations/job.html#progress" if request.htmx else "annotations/job.html"
    return render(
        request,
        template,
        {
            "project": project,
            "job": job,
            "poll_url": reverse("annotations:job", args=[slug, public_id]),
        },
    )
