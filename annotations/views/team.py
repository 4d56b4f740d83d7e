"""Pages for a project's team (reviewers and managers): the dashboard, the item browser, one
item with everyone's answers, and the review queue."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from annotations import charts, selectors, services
from annotations.models import Annotation, Item
from annotations.views.common import LETTERS, app_errors, project_for, ranking_letters
from arena.rendering import render_markdown


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = project_for(request, slug, need="team")
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
    """``?show=`` ``gold``, ``complete`` or ``open`` (non-gold items by their submissions)."""
    project, roles = project_for(request, slug, need="team")
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
    project, _ = project_for(request, slug, need="team")
    item = get_object_or_404(Item, project=project, public_id=public_id)
    responses = list(item.responses.select_related("llm"))
    anns = list(
        item.annotations.exclude(status=Annotation.Status.DRAFT).select_related("annotator")
    )
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
            "annotations": [{"a": a, "ranking": ranking_letters(a.ranking)} for a in anns],
            "consensus": ranking_letters(selectors.item_consensus(item)),
            "gold": ranking_letters(item.gold_ranking) if item.is_gold else "",
            "prompt_html": render_markdown(item.prompt),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@app_errors
def review(request: HttpRequest, slug: str) -> HttpResponse:
    """Submitted work by ``?state=`` (pending by default); a POST records one decision."""
    project, _ = project_for(request, slug, need="team")
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
    rows = [
        {"ann": ann, "ranking": ranking_letters(ann.ranking), "flags": ", ".join(ann.flags)}
        for ann in page
    ]
    return render(
        request,
        "annotations/review.html",
        {"project": project, "page": page, "rows": rows, "state": state},
    )
