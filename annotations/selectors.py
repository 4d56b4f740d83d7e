"""Reads: who may do what in a project, progress and quality figures, and the public
``accepted_rankings`` stream that the preferences and rating apps consume.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotations import quality
from annotations.models import Annotation, Assignment, Item, Project


@dataclass(frozen=True)
class Roles:
    annotator: bool = False
    reviewer: bool = False
    manager: bool = False

    @property
    def any(self) -> bool:
        return self.annotator or self.reviewer or self.manager

    @property
    def team(self) -> bool:
        """May see the dashboard and everyone's work (reviewers and managers)."""
        return self.reviewer or self.manager


def roles_for(project: Project, user: Any) -> Roles:
    """The user's roles in ``project``: one query, remembered on the user object.

    ``request.user`` is a new object on every request, so the memo lasts one request (or one
    batch of claims by the same object); a role granted or revoked shows on the next request.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Roles()
    memo = user.__dict__.setdefault("_annotation_roles", {})
    if project.pk in memo:
        return memo[project.pk]
    manager = bool(user.is_staff or project.owner_id == user.id)
    through_a = Project.annotators.through
    through_r = Project.reviewers.through
    through_g = Project.annotator_groups.through
    flags = (
        Project.objects.filter(pk=project.pk)
        .annotate(
            is_annotator=Exists(through_a.objects.filter(project_id=OuterRef("pk"), user=user))
            | Exists(through_g.objects.filter(project_id=OuterRef("pk"), group__user=user)),
            is_reviewer=Exists(through_r.objects.filter(project_id=OuterRef("pk"), user=user)),
        )
        .values_list("is_annotator", "is_reviewer")
        .first()
    ) or (False, False)
    roles = Roles(annotator=bool(flags[0]), reviewer=bool(flags[1]), manager=manager)
    memo[project.pk] = roles
    return roles


def forget_roles(user: Any) -> None:
    """Drop the memo of :func:`roles_for` (after changing the user's roles in this request)."""
    user.__dict__.pop("_annotation_roles", None)


def projects_for(user: Any) -> QuerySet[Project]:
    """Projects where ``user`` has any role (staff: all)."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(
        Q(annotators=user) | Q(annotator_groups__user=user) | Q(reviewers=user) | Q(owner=user)
    ).distinct()


def pseudonym(user_id: int) -> str:
    """A stable, non-reversible annotator name for exports and dashboards."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:annotator:{user_id}".encode()).hexdigest()
    return f"ann-{digest[:10]}"


# --- progress -------------------------------------------------------------------------------------


def annotator_progress(project: Project, user: Any) -> dict[str, int]:
    mine = Assignment.objects.filter(project=project, annotator=user)
    counts = mine.aggregate(
        submitted=Count("id", filter=Q(state=Assignment.State.SUBMITTED)),
        skipped=Count("id", filter=Q(state=Assignment.State.SKIPPED)),
    )
    done_ids = mine.exclude(state=Assignment.State.EXPIRED).values("item_id")
    available = (
        Item.objects.filter(project=project, is_gold=False, taken__lt=project.overlap)
        .exclude(id__in=done_ids)
        .count()
    )
    return {**counts, "available": available}


def project_progress(project: Project) -> dict[str, Any]:
    items = Item.objects.filter(project=project, is_gold=False)
    agg = items.aggregate(
        total=Count("id"),
        complete=Count("id", filter=Q(submitted__gte=project.overlap)),
    )
    gold = Item.objects.filter(project=project, is_gold=True).count()
    needed = agg["total"] * project.overlap
    subs = Annotation.objects.filter(
        project=project, status=Annotation.Status.SUBMITTED, item__is_gold=False
    ).count()
    now = timezone.now()
    active = Assignment.objects.filter(project=project).live_active(now).count()
    return {
        **agg,
        "gold": gold,
        "needed": needed,
        "submitted": subs,
        "active": active,
        "percent": round(100 * min(subs, needed) / needed) if needed else 0,
    }


def throughput_by_day(project: Project, days: int = 14) -> list[tuple[str, int]]:
    since = timezone.now() - timedelta(days=days - 1)
    rows = (
        Annotation.objects.filter(
            project=project, status=Annotation.Status.SUBMITTED, submitted_at__gte=since
        )
        .annotate(day=TruncDate("submitted_at"))
        .values("day")
        .annotate(n=Count("id"))
    )
    by_day = {r["day"]: r["n"] for r in rows}
    start = since.date()
    return [
        ((start + timedelta(days=i)).isoformat(), by_day.get(start + timedelta(days=i), 0))
        for i in range(days)
    ]


# --- quality --------------------------------------------------------------------------------------


def _submitted(project: Project) -> QuerySet[Annotation]:
    return Annotation.objects.filter(project=project, status=Annotation.Status.SUBMITTED)


@dataclass
class AnnotatorStats:
    user_id: int
    username: str
    pseudonym: str
    submitted: int = 0
    skipped: int = 0
    rejected: int = 0
    gold_answers: int = 0
    gold_accuracy: float = math.nan
    gold_tau: float = math.nan
    consensus_tau: float = math.nan
    trust: float = 0.5
    median_seconds: float = math.nan
    _gold_taus: list[float] = field(default_factory=list, repr=False)
    _cons_taus: list[float] = field(default_factory=list, repr=False)


@dataclass
class ProjectQuality:
    alpha: float
    w: float
    per_label: dict[str, dict[str, float]]
    annotators: list[AnnotatorStats]
    consensus: dict[int, quality.Ranking]


def project_quality(project: Project) -> ProjectQuality:
    """Agreement, gold scores, trust and consensus for the whole project (one pass in Python).

    Rejected annotations are left out of agreement and consensus, but still count against the
    annotator in the per-annotator figures.
    """
    k = project.k
    rows = list(
        Annotation.objects.filter(project=project)
        .exclude(status=Annotation.Status.DRAFT)
        .select_related("annotator", "item")
        .only(
            "status", "ranking", "labels", "review", "time_spent_ms", "item_id", "annotator_id",
            "annotator__username", "item__is_gold", "item__gold_ranking",
        )
    )  # fmt: skip
    stats, times, by_item = _tally_annotators(rows, k)
    agreement = _Agreement()
    for item_id, anns in by_item.items():
        agreement.add_item(item_id, anns, k, stats)
        for spec in project.labels:
            agreement.add_label(spec, anns, k)
    per_label = {
        spec["name"]: {
            "alpha": quality.krippendorff_alpha(
                agreement.label_units[spec["name"]],
                "ordinal" if spec["kind"] == "likert" else "nominal",
            ),
            "w": (
                quality.mean(agreement.label_ws[spec["name"]])
                if spec["kind"] == "likert"
                else math.nan
            ),
        }
        for spec in project.labels
    }
    for s in stats.values():
        s.gold_tau = quality.mean(s._gold_taus)
        s.consensus_tau = quality.mean(s._cons_taus)
        s.trust = quality.trust_score(s._gold_taus, s._cons_taus)
        t = sorted(times[s.user_id])
        s.median_seconds = t[len(t) // 2] / 1000 if t else math.nan
    return ProjectQuality(
        alpha=quality.krippendorff_alpha(agreement.units, "ordinal"),
        w=quality.mean(agreement.ws),
        per_label=per_label,
        annotators=sorted(stats.values(), key=lambda s: (-s.submitted, s.username)),
        consensus=agreement.consensus,
    )


def _tally_annotators(
    rows: list[Annotation], k: int
) -> tuple[dict[int, AnnotatorStats], dict[int, list[int]], dict[int, list[Annotation]]]:
    """Per annotator: counts and gold scores, and their times; per non-gold item: the
    annotations that count towards agreement (submitted, not rejected)."""
    stats: dict[int, AnnotatorStats] = {}
    times: dict[int, list[int]] = defaultdict(list)
    by_item: dict[int, list[Annotation]] = defaultdict(list)
    for a in rows:
        s = stats.setdefault(
            a.annotator_id,
            AnnotatorStats(a.annotator_id, a.annotator.username, pseudonym(a.annotator_id)),
        )
        if a.status == Annotation.Status.SKIPPED:
            s.skipped += 1
            continue
        s.submitted += 1
        times[a.annotator_id].append(a.time_spent_ms)
        if a.review == Annotation.Review.REJECTED:
            s.rejected += 1
        if a.item.is_gold and a.item.gold_ranking:
            _add_gold_answer(s, a.ranking, a.item.gold_ranking, k)
        elif a.review != Annotation.Review.REJECTED:
            by_item[a.item_id].append(a)
    return stats, times, by_item


def _add_gold_answer(
    s: AnnotatorStats, ranking: quality.Ranking, gold: quality.Ranking, k: int
) -> None:
    s.gold_answers += 1
    s._gold_taus.append(quality.kendall_tau(quality.ranks(ranking, k), quality.ranks(gold, k)))
    s.gold_accuracy = (
        (0 if math.isnan(s.gold_accuracy) else s.gold_accuracy * (s.gold_answers - 1))
        + quality.top_choice_correct(ranking, gold)
    ) / s.gold_answers


@dataclass
class _Agreement:
    """What the agreement figures are computed from, gathered item by item."""

    consensus: dict[int, quality.Ranking] = field(default_factory=dict)
    units: list[list[float]] = field(default_factory=list)  # one per (item, response)
    ws: list[float] = field(default_factory=list)  # Kendall's W per item
    label_units: dict[str, list[list[float | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    label_ws: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add_item(
        self, item_id: int, anns: list[Annotation], k: int, stats: dict[int, AnnotatorStats]
    ) -> None:
        """The item's consensus and rank agreement; each annotator's tau against the consensus."""
        rankings = [a.ranking for a in anns]
        self.consensus[item_id] = quality.ranked_pairs(rankings, k)
        matrix = [quality.ranks(r, k) for r in rankings]
        self.units.extend([[row[j] for row in matrix] for j in range(k)])
        if len(anns) >= 2:
            self.ws.append(quality.kendall_w(matrix))
            cons_ranks = quality.ranks(self.consensus[item_id], k)
            for a, row in zip(anns, matrix, strict=True):
                stats[a.annotator_id]._cons_taus.append(quality.kendall_tau(row, cons_ranks))

    def add_label(self, spec: dict[str, Any], anns: list[Annotation], k: int) -> None:
        """One label's values on the item; W over a likert label's implied rankings."""
        name = spec["name"]
        per_resp = [[_label_value(a.labels, j, name) for a in anns] for j in range(k)]
        self.label_units[name].extend(per_resp)
        if len(anns) >= 2 and spec["kind"] == "likert":
            cols = [[per_resp[j][i] for j in range(k)] for i in range(len(anns))]
            if all(v is not None for col in cols for v in col):
                self.label_ws[name].append(
                    quality.kendall_w(
                        [quality.ranks(quality.ranking_from_scores(c), k) for c in cols]  # type: ignore[arg-type]
                    )
                )


def _label_value(labels: dict[str, Any], index: int, name: str) -> float | None:
    value = (labels or {}).get(str(index), {}).get(name)
    return None if value is None else float(value)


def item_consensus(item: Item) -> quality.Ranking | None:
    rankings = list(
        Annotation.objects.filter(item=item, status=Annotation.Status.SUBMITTED)
        .exclude(review=Annotation.Review.REJECTED)
        .values_list("ranking", flat=True)
    )
    if not rankings:
        return None
    return quality.ranked_pairs(rankings, item.project.k)


# --- the stream other apps read -------------------------------------------------------------------


def accepted_rankings(
    *,
    project: Project | None = None,
    since: datetime | None = None,
    max_id: int | None = None,
    include_gold: bool = False,
    approved_only: bool = False,
) -> Iterator[dict[str, Any]]:
    """Every submitted, not-rejected ranking, oldest first, as plain dicts.

    Each dict: ``annotation_id`` (int, for snapshot cut-offs via ``max_id``), ``annotation``
    (UUID str), ``project`` (slug), ``item`` (UUID str), ``prompt``, ``conversation``,
    ``responses`` (list of ``{"index", "id", "text", "llm_id", "llm_slug", "source_model"}``),
    ``ranking`` (groups of response indices, best first; a group of several is a tie),
    ``labels`` (``{index: {label: value}}``), ``flags``, ``annotator`` (pseudonym), ``trust``
    (0..1), ``review`` ("pending" or "approved"), ``created`` (submission time).
    Trust is computed once per project per call. Streams with ``iterator()``; safe for exports.
    """
    qs = (
        Annotation.objects.filter(status=Annotation.Status.SUBMITTED)
        .exclude(review=Annotation.Review.REJECTED)
        .select_related("item", "project")
        .order_by("id")
    )
    if project is not None:
        qs = qs.filter(project=project)
    if since is not None:
        qs = qs.filter(submitted_at__gte=since)
    if max_id is not None:
        qs = qs.filter(id__lte=max_id)
    if not include_gold:
        qs = qs.filter(item__is_gold=False)
    if approved_only:
        qs = qs.filter(review=Annotation.Review.APPROVED)
    trust: dict[int, dict[int, float]] = {}
    responses: dict[int, list[dict[str, Any]]] = {}
    for a in qs.iterator(chunk_size=500):
        if a.project_id not in trust:
            trust[a.project_id] = {
                s.user_id: s.trust for s in project_quality(a.project).annotators
            }
        if a.item_id not in responses:
            responses[a.item_id] = [
                {
                    "index": r.index,
                    "id": str(r.public_id),
                    "text": r.text,
                    "llm_id": r.llm_id,
                    "llm_slug": r.llm.slug if r.llm else None,
                    "source_model": r.model_name,
                }
                for r in a.item.responses.select_related("llm").order_by("index")
            ]
            if len(responses) > 2000:
                responses = {a.item_id: responses[a.item_id]}
        yield {
            "annotation_id": a.id,
            "annotation": str(a.public_id),
            "project": a.project.slug,
            "item": str(a.item.public_id),
            "prompt": a.item.prompt,
            "conversation": a.item.conversation,
            "responses": responses[a.item_id],
            "ranking": a.ranking,
            "labels": a.labels,
            "flags": a.flags,
            "annotator": pseudonym(a.annotator_id),
            "trust": trust[a.project_id].get(a.annotator_id, 0.5),
            "review": a.review,
            "created": a.submitted_at or a.created,
        }
