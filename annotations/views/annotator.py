"""Pages for annotators: their queue, the task page (rank, label, autosave, submit, skip), and
accepting an invitation."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotations import selectors, services
from annotations.forms import SkipForm
from annotations.models import Annotation, Assignment, ItemResponse, Project
from annotations.views.common import LETTERS, app_errors, assignment_for, project_for
from arena.rendering import render_markdown
from core.errors import ApplicationError


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    rows = []
    for project in selectors.projects_for(request.user).filter(active=True):
        roles = selectors.roles_for(project, request.user)
        progress = selectors.annotator_progress(project, request.user) if roles.annotator else None
        rows.append({"project": project, "roles": roles, "progress": progress})
    recent = (
        Annotation.objects.filter(annotator=request.user)
        .exclude(status=Annotation.Status.DRAFT)
        .select_related("project", "item")[:10]
    )
    return render(
        request,
        "annotations/queue.html",
        {"rows": rows, "recent": recent, "can_create": services.may_create_projects(request.user)},
    )


@login_required
@require_POST
def project_next(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for(request, slug, need="annotator")
    try:
        assignment = services.assignment_claim(project=project, annotator=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("annotations:queue")
    if assignment is None:
        messages.success(request, f"Nothing left to annotate in “{project.name}”. Thank you!")
        return redirect("annotations:queue")
    return redirect("annotations:task", public_id=assignment.public_id)


@login_required
@require_http_methods(["GET", "POST"])
@app_errors
def task(request: HttpRequest, public_id: Any) -> HttpResponse:
    """The task page; its form posts ``action`` = ``draft`` (autosave), ``skip`` or ``submit``."""
    assignment = assignment_for(request, public_id)
    if request.method == "GET":
        return render(request, "annotations/task.html", _task_context(request, assignment))
    action = request.POST.get("action", "submit")
    if action == "draft":
        answer = services.answer_from_post(request.POST, assignment=assignment)
        ann = services.annotation_save_draft(
            assignment=assignment, annotator=request.user, data=answer
        )
        return render(request, "annotations/task.html#autosave", {"draft": ann})
    if action == "skip":
        form = SkipForm(request.POST)
        if not form.is_valid():
            raise ApplicationError("Choose a reason for skipping.")
        services.assignment_skip(
            assignment=assignment,
            annotator=request.user,
            reason=form.cleaned_data["reason"],
            comment=form.cleaned_data["comment"],
        )
        messages.info(request, "Skipped.")
    else:
        answer = services.answer_from_post(request.POST, assignment=assignment)
        services.annotation_submit(assignment=assignment, annotator=request.user, data=answer)
        messages.success(request, "Saved. Here is the next one.")
    return _next_task(request, assignment.project)


def _next_task(request: HttpRequest, project: Project) -> HttpResponse:
    nxt = services.assignment_claim(project=project, annotator=request.user)
    if nxt is None:
        messages.success(request, "You have finished every task available to you.")
        return redirect("annotations:queue")
    return redirect("annotations:task", public_id=nxt.public_id)


def _shown_response(
    project: Project, r: ItemResponse, pos: int, values: dict[str, Any]
) -> dict[str, Any]:
    """One response as the page shows it at place ``pos``, with its label inputs."""
    return {
        "id": str(r.public_id),
        "letter": LETTERS[pos],
        "number": pos + 1,
        "html": render_markdown(r.text),
        "excerpt": r.text[:90],
        "model": "" if project.blind else r.model_name,
        "labels": [
            {
                **spec,
                "value": values.get(spec["name"]),
                "choices": list(
                    range(spec.get("min", 1), spec["max"] + 1) if spec["kind"] == "likert" else []
                ),
            }
            for spec in project.labels
        ],
    }


def _task_context(request: HttpRequest, assignment: Assignment) -> dict[str, Any]:
    project = assignment.project
    item = assignment.item
    by_index = {r.index: r for r in item.responses.select_related("llm")}
    order = assignment.display_order or sorted(by_index)
    draft = Annotation.objects.filter(assignment=assignment).first()
    draft_labels = (draft.labels if draft else {}) or {}
    shown = [
        _shown_response(project, by_index[idx], pos, draft_labels.get(str(idx), {}))
        for pos, idx in enumerate(order)
    ]
    id_of = {idx: str(by_index[idx].public_id) for idx in by_index}
    draft_ranking = [[id_of[i] for i in g] for g in (draft.ranking if draft else [])]
    return {
        "assignment": assignment,
        "project": project,
        "item": item,
        "responses": shown,
        "guidelines_html": render_markdown(project.guidelines),
        "conversation": item.conversation,
        "prompt_html": render_markdown(item.prompt),
        "draft": draft,
        "draft_ranking_json": json.dumps(draft_ranking) if draft_ranking else "",
        "progress": selectors.annotator_progress(project, request.user),
        "flags": Annotation.Flag.choices,
        "skip_form": SkipForm(),
        "stacked": project.k > 2,
    }


@login_required
@require_http_methods(["GET", "POST"])
@app_errors
def invitation(request: HttpRequest, token: Any) -> HttpResponse:
    if request.method == "POST":
        project = services.invitation_accept(token=token, user=request.user)
        messages.success(request, f"You joined “{project.name}”.")
        return redirect("annotations:queue")
    return render(request, "annotations/invitation.html", {"token": token})
