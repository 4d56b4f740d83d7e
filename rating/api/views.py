"""Public, read-only leaderboard API: the latest snapshot as JSON or CSV, and model detail."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arena.models import LLM
from core.api import PublicReadOnly
from core.errors import NotFound
from core.openapi import ErrorOutput
from rating import selectors
from rating.api.serializers import (
    CategorySerializer,
    LeaderboardQuerySerializer,
    ModelDetailSerializer,
    SnapshotWithMatricesSerializer,
)
from rating.models import LeaderboardSnapshot

CSV_FIELDS = [
    "rank", "model", "name", "organisation", "license", "score", "lower", "upper", "ci_plus",
    "ci_minus", "votes", "component",
]  # fmt: skip


NO_LEADERBOARD = OpenApiResponse(
    ErrorOutput, description="No leaderboard of that kind yet (code `no_leaderboard`)."
)


class PublicView(APIView):
    """Anyone may read; no view here writes. Anonymous requests are throttled as usual."""

    authentication_classes: list[Any] = []
    permission_classes = [PublicReadOnly]


def _snapshot_for(request: Request) -> tuple[LeaderboardSnapshot, dict[str, Any]]:
    query = LeaderboardQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    q = query.validated_data
    snapshot = selectors.snapshot_latest(
        source=q["source"], category=q["category"], style_control=q["style_control"]
    )
    if snapshot is None:
        raise NotFound(
            f"No leaderboard for category {q['category']!r} "
            f"({'style controlled' if q['style_control'] else 'plain'}, {q['source']}) yet.",
            code="no_leaderboard",
        )
    return snapshot, q


class LeaderboardView(PublicView):
    @extend_schema(
        parameters=[LeaderboardQuerySerializer],
        responses={
            200: SnapshotWithMatricesSerializer,
            404: NO_LEADERBOARD,
        },
        summary="Latest leaderboard of a category, with 95% intervals and matrices",
        tags=["leaderboard"],
    )
    def get(self, request: Request) -> Response:
        snapshot, _ = _snapshot_for(request)
        return Response(SnapshotWithMatricesSerializer(snapshot).data)


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        return data if isinstance(data, str) else json.dumps(data)


class LeaderboardCSVView(PublicView):
    renderer_classes = [CSVRenderer, JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        """Errors are JSON, like everywhere in the API: the CSV renderer negotiated for the
        success answer labelled the JSON error body ``text/csv``."""
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response

    @extend_schema(
        parameters=[LeaderboardQuerySerializer],
        responses={(200, "text/csv"): OpenApiTypes.STR, 404: NO_LEADERBOARD},
        summary="Latest leaderboard of a category as CSV",
        tags=["leaderboard"],
    )
    def get(self, request: Request) -> Response:
        snapshot, q = _snapshot_for(request)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in snapshot.rows:
            writer.writerow(row)
        name = f"leaderboard-{q['source']}-{q['category'].replace(':', '-')}"
        name += "-style" if q["style_control"] else ""
        return Response(
            out.getvalue(),
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}.csv"',
                # A withheld board has no scores; the reason is in the JSON view.
                "X-Leaderboard-Status": snapshot.status["status"],
            },
        )


class CategoriesView(PublicView):
    @extend_schema(
        responses=CategorySerializer(many=True),
        summary="Categories that have a leaderboard",
        tags=["leaderboard"],
    )
    def get(self, request: Request) -> Response:
        cats = selectors.snapshot_categories(source="arena")
        return Response([{"category": c, "label": selectors.category_label(c)} for c in cats])


class ModelDetailView(PublicView):
    @extend_schema(
        parameters=[LeaderboardQuerySerializer],
        responses=ModelDetailSerializer,
        summary="A model's rating and head-to-head record",
        tags=["leaderboard"],
    )
    def get(self, request: Request, slug: str) -> Response:
        llm = get_object_or_404(LLM, slug=slug)
        query = LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        category = query.validated_data["category"]
        snapshot = selectors.snapshot_latest(
            source="arena", category=category,
            style_control=query.validated_data["style_control"],
        )  # fmt: skip
        row = None
        predicted: dict[str, float | None] = {}
        if snapshot is not None:
            row = next((r for r in snapshot.rows if r["model"] == llm.slug), None)
            models = snapshot.matrices.get("models", [])
            if llm.slug in models:
                i = models.index(llm.slug)
                matrix = snapshot.matrices.get("predicted_win_rate", [])
                predicted = {m: matrix[i][j] for j, m in enumerate(models)} if matrix else {}
        record = selectors.head_to_head(llm, category=category)
        for r in record:
            r["predicted_win_rate"] = predicted.get(r["opponent"])
        data = {
            "model": llm.slug,
            "name": llm.display_name,
            "organisation": llm.organisation,
            "license": llm.license,
            "category": category,
            "rating": row,
            "computed_at": snapshot.computed_at if snapshot else None,
            "head_to_head": record,
        }
        return Response(ModelDetailSerializer(data).data)
