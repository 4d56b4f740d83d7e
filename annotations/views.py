"""HTML pages: the annotator's queue and task page, the team dashboard, review, loading items.

Every page goes through one access helper; a user with no role in a project gets 404 (outsiders
learn nothing, not even that the project exists).
"""

from __future__ import annotations

import json
import math
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotations import charts, selectors, services
from annotations.forms import GenerateForm, ImportForm, InvitationForm, ProjectForm, SkipForm
from annotations.models import Annotation, Assignment, GenerationJob, Invitation, Item, Project
from arena.rendering import render_markdown
from core.errors import ApplicationError

LETTERS = "ABCDEFGHIJ"


def _project_for(request: HttpRequest, slug: str, *, need: str = "any") -> tuple[Project, Any]:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404
    roles = selectors.roles_for(project, request.user)
    allowed = {
        "any": roles.any,
        "annotator": roles.annotator,
        "team": roles.team,
        "manager": roles.manager,
    }[need]
    if not allowed:
        raise Http404
    return project, roles


def _assignment_for(request: HttpRequest, public_id: Any) -> Assignment:
    """The annotator's own assignment; anybody else's is 404."""
    a = (
        Assignment.objects.select_related("project", "item")
        .filter(public_id=public_id, annotator=request.user)
        .first()
    )
    if a is None or not selectors.roles_for(a.project, request.user).annotator:
        raise Http404
    return a


def _app_errors(view):
    """Map domain errors to a message (and a 4xx status for htmx fragments)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            if request.headers.get("HX-Request"):
                return HttpResponse(
                    f'<span class="error" role="alert">{_escape(exc.message)}</span>',
                    status=exc.status if exc.status != 404 else 404,
                )
            if exc.status == 404:
                raise Http404 from exc
            messages.error(request, exc.message)
            return redirect(request.get_full_path())

    return wrapper


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


# --- annotator ---------------------------------------------------------------------------------------


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
    project, _ = _project_for(request, slug, need="annotator")
    try:
        assignment = services.assignment_claim(project=project, annotator=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("annotations:queue")
    if assignment is None:
        messages.success(request, f"Nothing left to annotate in “{project.name}”. Thank you!")
        return redirect("annotations:queue")
    return redirect("annotations:task", public_id=assignment.public_id)


def _answer_data(request: HttpRequest, assignment: Assignment) -> dict[str, Any]:
    post = request.POST
    try:
        ranking = json.loads(post.get("ranking") or "[]")
    except json.JSONDecodeError:
        ranking = "invalid"
    ids = [str(r.public_id) for r in assignment.item.responses.all()]
    choice = post.get("choice")
    if choice in {"a", "b", "tie"} and len(ids) == 2:
        shown = [ids[i] for i in assignment.display_order or range(2)]
        ranking = {"a": [[shown[0]], [shown[1]]], "b": [[shown[1]], [shown[0]]], "tie": [shown]}[
            choice
        ]
    labels: dict[str, dict[str, str]] = {}
    for key, value in post.items():
        if key.startswith("label:"):
            _, rid, name = key.split(":", 2)
            labels.setdefault(rid, {})[name] = value
    return {
        "ranking": ranking,
        "labels": labels,
        "flags": post.getlist("flags"),
        "comment": post.get("comment", ""),
        "time_spent_ms": post.get("time_spent_ms") or 0,
    }


@login_required
@require_http_methods(["GET", "POST"])
@_app_errors
def task(request: HttpRequest, public_id: Any) -> HttpResponse:
    assignment = _assignment_for(request, public_id)
    if request.method == "POST":
        action = request.POST.get("action", "submit")
        if action == "draft":
            ann = services.annotation_save_draft(
                assignment=assignment,
                annotator=request.user,
                data=_answer_data(request, assignment),
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
            services.annotation_submit(
                assignment=assignment,
                annotator=request.user,
                data=_answer_data(request, assignment),
            )
            messages.success(request, "Saved. Here is the next one.")
        nxt = services.assignment_claim(project=assignment.project, annotator=request.user)
        if nxt is None:
            messages.success(request, "You have finished every task available to you.")
            return redirect("annotations:queue")
        return redirect("annotations:task", public_id=nxt.public_id)
    return render(request, "annotations/task.html", _task_context(request, assignment))


def _task_context(request: HttpRequest, assignment: Assignment) -> dict[str, Any]:
    project = assignment.project
    item = assignment.item
    by_index = {r.index: r for r in item.responses.select_related("llm")}
    order = assignment.display_order or sorted(by_index)
    draft = Annotation.objects.filter(assignment=assignment).first()
    draft_labels = (draft.labels if draft else {}) or {}
    shown = []
    for pos, idx in enumerate(order):
        r = by_index[idx]
        values = draft_labels.get(str(idx), {})
        shown.append(
            {
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
                            range(spec.get("min", 1), spec["max"] + 1)
                            if spec["kind"] == "likert"
                            else []
                        ),
                    }
                    for spec in project.labels
                ],
            }
        )
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
@_app_errors
def invitation(request: HttpRequest, token: Any) -> HttpResponse:
    if request.method == "POST":
        project = services.invitation_accept(token=token, user=request.user)
        messages.success(request, f"You joined “{project.name}”.")
        return redirect("annotations:queue")
    return render(request, "annotations/invitation.html", {"token": token})


# --- team ---------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, need="team")
    q = selectors.project_quality(project)
    progress = selectors.project_progress(project)
    throughput = selectors.throughput_by_day(project)
    annotators = [
        {
            "s": s,
            "gold_accuracy": _fmt(s.gold_accuracy),
            "gold_tau": _fmt(s.gold_tau),
            "consensus_tau": _fmt(s.consensus_tau),
            "trust": _fmt(s.trust),
            "median_seconds": _fmt(s.median_seconds),
        }
        for s in q.annotators
    ]
    return render(
        request,
        "annotations/dashboard.html",
        {
            "project": project,
            "roles": roles,
            "progress": progress,
            "alpha": _fmt(q.alpha),
            "w": _fmt(q.w),
            "per_label": [
                {"name": n, "alpha": _fmt(v["alpha"]), "w": _fmt(v["w"])}
                for n, v in q.per_label.items()
            ],
            "annotators": annotators,
            "throughput_svg": charts.bar_chart(throughput, title="Annotations per day"),
            "trust_svg": charts.hbar_chart(
                [(s.username, s.trust) for s in q.annotators], title="Trust (0–1)"
            ),
            "jobs": project.generation_jobs.all()[:5],
        },
    )


@login_required
def items(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, need="team")
    qs = Item.objects.filter(project=project).order_by("id")
    show = request.GET.get("show", "")
    if show == "gold":
        qs = qs.filter(is_gold=True)
    elif show == "complete":
        qs = qs.filter(submitted__gte=project.overlap, is_gold=False)
    elif show == "open":
        qs = qs.filter(submitted__lt=project.overlap, is_gold=False)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "annotations/items.html",
        {"project": project, "page": page, "show": show, "roles": roles},
    )


@login_required
def item_detail(request: HttpRequest, slug: str, public_id: Any) -> HttpResponse:
    project, roles = _project_for(request, slug, need="team")
    item = get_object_or_404(Item, project=project, public_id=public_id)
    responses = list(item.responses.select_related("llm"))
    anns = list(
        item.annotations.exclude(status=Annotation.Status.DRAFT).select_related("annotator")
    )
    consensus = selectors.item_consensus(item)

    def letters(ranking: list[list[int]] | None) -> str:
        if not ranking:
            return "–"
        return " > ".join(" = ".join(LETTERS[i] for i in g) for g in ranking)

    return render(
        request,
        "annotations/item.html",
        {
            "project": project,
            "item": item,
            "responses": [
                {"r": r, "letter": LETTERS[r.index], "html": render_markdown(r.text)}
                for r in responses
            ],
            "annotations": [{"a": a, "ranking": letters(a.ranking)} for a in anns],
            "consensus": letters(consensus),
            "gold": letters(item.gold_ranking) if item.is_gold else "",
            "prompt_html": render_markdown(item.prompt),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@_app_errors
def review(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, need="team")
    if request.method == "POST":
        ann = get_object_or_404(
            Annotation, project=project, public_id=request.POST.get("annotation")
        )
        ann = services.annotation_review(
            annotation=ann,
            reviewer=request.user,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", ""),
        )
        if request.htmx:
            return render(request, "annotations/review.html#decision", {"ann": ann})
        return redirect("annotations:review", slug=slug)
    state = request.GET.get("state", "pending")
    qs = (
        Annotation.objects.filter(project=project, status=Annotation.Status.SUBMITTED)
        .select_related("annotator", "item", "project")
        .order_by("submitted_at")
    )
    if state in Annotation.Review.values:
        qs = qs.filter(review=state)
    page = Paginator(qs, 20).get_page(request.GET.get("page"))
    rows = []
    for ann in page:
        rows.append(
            {
                "ann": ann,
                "ranking": " > ".join(" = ".join(LETTERS[i] for i in g) for g in ann.ranking),
                "flags": ", ".join(ann.flags),
            }
        )
    return render(
        request,
        "annotations/review.html",
        {"project": project, "page": page, "rows": rows, "state": state},
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_items(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = _project_for(request, slug, need="manager")
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
@_app_errors
def generate(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = _project_for(request, slug, need="manager")
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
    project, _ = _project_for(request, slug, need="manager")
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


# --- project set-up -----------------------------------------------------------------------------------


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
@_app_errors
def invitations(request: HttpRequest, slug: str) -> HttpResponse:
    """One-use invitation links for annotators and reviewers (managers only)."""
    project, _ = _project_for(request, slug, need="manager")
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
