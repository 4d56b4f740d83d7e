"""Annotation REST API: thin views over the same services as the HTML pages.

Access mirrors the pages: a user with no role in a project gets 404.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors, services
from annotations.api.serializers import (
    AnswerIn,
    ImportIn,
    ProjectOut,
    ReviewIn,
    SkipIn,
    annotation_out,
    assignment_out,
)
from annotations.models import Annotation, Assignment, GenerationJob, Project
from core.errors import NotFound
from core.openapi import ErrorOutput


def _project(request: Request, slug: str, need: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    roles = selectors.roles_for(project, request.user) if project else selectors.Roles()
    ok = {
        "any": roles.any,
        "annotator": roles.annotator,
        "team": roles.team,
        "manager": roles.manager,
    }
    if not ok[need]:
        raise NotFound("No such project.")
    return project  # type: ignore[return-value]


def _own_assignment(request: Request, task: Any) -> Assignment:
    a = (
        Assignment.objects.select_related("project", "item")
        .filter(public_id=task, annotator=request.user)
        .first()
    )
    if a is None or not selectors.roles_for(a.project, request.user).annotator:
        raise NotFound("No such task.")
    return a


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)


# The task's or project's state forbids it now (closed assignment, paused project, reviewed).
CONFLICT = OpenApiResponse(ErrorOutput, description="Not possible in the current state.")


class ProjectList(generics.ListAPIView):
    serializer_class = ProjectOut

    def get_queryset(self) -> QuerySet[Project]:
        return selectors.projects_for(self.request.user)


class ItemImport(APIView):
    @extend_schema(request=ImportIn, responses={201: dict})
    def post(self, request: Request, slug: str) -> Response:
        project = _project(request, slug, "manager")
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        content = upload.read() if upload else data.validated_data["content"]
        fmt = data.validated_data.get("format") or (
            "csv" if upload and upload.name.lower().endswith(".csv") else "jsonl"
        )
        n = services.items_import(project=project, user=request.user, content=content, fmt=fmt)
        return Response({"imported": n}, status=status.HTTP_201_CREATED)


class Claim(APIView):
    @extend_schema(request=None, responses={200: dict, 204: None, 409: CONFLICT})
    def post(self, request: Request, slug: str) -> Response:
        project = _project(request, slug, "annotator")
        a = services.assignment_claim(project=project, annotator=request.user)
        if a is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(assignment_out(a))


class TaskDetail(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, task: Any) -> Response:
        a = _own_assignment(request, task)
        body = assignment_out(a)
        ann = Annotation.objects.filter(assignment=a).first()
        body["annotation"] = annotation_out(ann) if ann else None
        return Response(body)


class TaskDraft(APIView):
    @extend_schema(request=AnswerIn, responses={200: dict, 409: CONFLICT})
    def post(self, request: Request, task: Any) -> Response:
        a = _own_assignment(request, task)
        data = AnswerIn(data=request.data)
        data.is_valid(raise_exception=True)
        ann = services.annotation_save_draft(
            assignment=a, annotator=request.user, data=services.answer_input(data.validated_data)
        )
        return Response(annotation_out(ann))


class TaskSubmit(APIView):
    @extend_schema(request=AnswerIn, responses={201: dict, 409: CONFLICT})
    def post(self, request: Request, task: Any) -> Response:
        a = _own_assignment(request, task)
        data = AnswerIn(data=request.data)
        data.is_valid(raise_exception=True)
        ann = services.annotation_submit(
            assignment=a, annotator=request.user, data=services.answer_input(data.validated_data)
        )
        return Response(annotation_out(ann), status=status.HTTP_201_CREATED)


class TaskSkip(APIView):
    @extend_schema(request=SkipIn, responses={200: dict, 409: CONFLICT})
    def post(self, request: Request, task: Any) -> Response:
        a = _own_assignment(request, task)
        data = SkipIn(data=request.data)
        data.is_valid(raise_exception=True)
        ann = services.assignment_skip(assignment=a, annotator=request.user, **data.validated_data)
        return Response(annotation_out(ann))


class Quality(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        project = _project(request, slug, "team")
        q = selectors.project_quality(project)
        return Response(
            {
                "progress": selectors.project_progress(project),
                "alpha": _num(q.alpha),
                "w": _num(q.w),
                "per_label": {
                    k: {m: _num(v) for m, v in d.items()} for k, d in q.per_label.items()
                },
                "annotators": [
                    {
                        "annotator": a.pseudonym,
                        "submitted": a.submitted,
                        "skipped": a.skipped,
                        "rejected": a.rejected,
                        "gold_answers": a.gold_answers,
                        "gold_accuracy": _num(a.gold_accuracy),
                        "gold_tau": _num(a.gold_tau),
                        "consensus_tau": _num(a.consensus_tau),
                        "trust": _num(a.trust),
                    }
                    for a in q.annotators
                ],
            }
        )


class Review(APIView):
    @extend_schema(request=ReviewIn, responses={200: dict, 409: CONFLICT})
    def post(self, request: Request, annotation: Any) -> Response:
        ann = (
            Annotation.objects.select_related("project", "item")
            .filter(public_id=annotation)
            .first()
        )
        if ann is None or not selectors.roles_for(ann.project, request.user).team:
            raise NotFound("No such annotation.")
        data = ReviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        ann = services.annotation_review(
            annotation=ann, reviewer=request.user, **data.validated_data
        )
        return Response(annotation_out(ann))


class JobDetail(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str, job: Any) -> Response:
        project = _project(request, slug, "manager")
        found = get_object_or_404(GenerationJob, project=project, public_id=job)
        return Response(
            {"job": str(found.public_id), "state": found.state, "total": found.total,
             "done": found.done, "failed": found.failed, "errors": found.errors,
             "percent": found.percent}
        )  # fmt: skip
