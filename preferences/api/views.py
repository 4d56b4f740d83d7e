from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arena.models import Vote
from core.api import PublicReadOnly
from core.errors import ApplicationError, NotFound
from core.openapi import ErrorOutput
from preferences import services
from preferences.api.filters import BattleFilterSet, PairFilterSet
from preferences.api.permissions import IsResearcher, TokenRateThrottle
from preferences.api.serializers import (
    BattleOutput,
    MeOutput,
    ModelOutput,
    PairPage,
    ReleaseInput,
    ReleaseOutput,
    TokenCreatedOutput,
    TokenInput,
    TokenOutput,
)
from preferences.auth import BearerTokenAuthentication, SessionOnly, TokenScope
from preferences.exports import ExportOptions
from preferences.models import ApiToken, DatasetRelease
from preferences.selectors import (
    SOURCES,
    PairFilters,
    StreamPosition,
    battles_for_browse,
    iter_pairs,
    models_for_browse,
    pair_to_json,
    position_of,
)


class MeView(APIView):
    @extend_schema(responses=MeOutput, summary="Who am I (checks a token)")
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        data = {
            "username": request.user.get_username(),
            "is_staff": request.user.is_staff,
            "auth": "token" if token else "session",
            "scope": token.scope if token else None,
        }
        return Response(MeOutput(data).data)


class TokenListCreateView(ListAPIView):
    """Tokens are managed from a logged-in session only: a token cannot mint tokens."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, SessionOnly]
    serializer_class = TokenOutput

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(
        request=TokenInput, responses={201: TokenCreatedOutput}, summary="Create a token"
    )
    def post(self, request: Request) -> Response:
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.token_create(user=request.user, **data.validated_data)
        token.secret = secret  # type: ignore[attr-defined]
        return Response(TokenCreatedOutput(token).data, status=status.HTTP_201_CREATED)


class TokenRevokeView(APIView):
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, SessionOnly]

    @extend_schema(request=None, responses=TokenOutput, summary="Revoke a token")
    def post(self, request: Request, public_id: str) -> Response:
        token = services.token_revoke(user=request.user, public_id=public_id)
        return Response(TokenOutput(token).data)


# --- datasets ----------------------------------------------------------------------------------


def signed_link_builder(request: Request) -> Any:
    def build(release: DatasetRelease, name: str) -> str:
        token = services.release_signed_token(release, name)
        return request.build_absolute_uri(
            reverse("preferences:file-signed", kwargs={"token": token, "name": name})
        )

    return build


def _cursor_url(request: Request, cursor: str) -> str:
    params = request.query_params.copy()
    params["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


def _encode_position(pos: StreamPosition) -> str:
    raw = f"{pos.phase}:{pos.pk}:{pos.sub}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_position(cursor: str) -> StreamPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        phase, pk, sub = (int(x) for x in raw.split(":"))
        if phase not in (0, 1) or pk < 0 or sub < -1:
            raise ValueError
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ApplicationError("Invalid cursor.", code="invalid_cursor") from exc
    return StreamPosition(phase=phase, pk=pk, sub=sub)


class ResearcherMixin:
    # Bearer first: a missing or bad token answers 401 with ``WWW-Authenticate: Bearer``.
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, IsResearcher, TokenScope]
    throttle_classes = [TokenRateThrottle]


class PairListView(ResearcherMixin, GenericAPIView):
    """Browse preference pairs (arena votes and annotation rankings) with filters."""

    queryset = Vote.objects.none()
    filter_backends = [DjangoFilterBackend]
    filterset_class = PairFilterSet
    pagination_class = None

    @extend_schema(
        responses=PairPage,
        # Not a list action to drf-spectacular (no ListModelMixin): ``filters=True`` documents
        # PairFilterSet's parameters anyway; ``source`` is overridden to carry its enum.
        filters=True,
        parameters=[
            OpenApiParameter("cursor", str, description="Opaque; from the previous `next`."),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 500},
                description="Pairs per page (default 50).",
            ),
            OpenApiParameter(
                "source",
                {"type": "array", "items": {"type": "string", "enum": list(SOURCES)}},
                style="form",
                explode=False,
                description="Comma-separated sources (default: all).",
            ),
        ],
        summary="Browse preference pairs",
    )
    def get(self, request: Request) -> Response:
        filterset = PairFilterSet(request.query_params, queryset=self.queryset)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        try:
            filters = filterset.pair_filters()
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        size = _page_size(request)
        cursor = request.query_params.get("cursor")
        after = _decode_position(cursor) if cursor else None
        pairs = list(
            itertools.islice(iter_pairs(filters, after=after, vote_limit=size + 1), size + 1)
        )
        next_url = None
        if len(pairs) > size:
            pairs = pairs[:size]
            next_url = _cursor_url(request, _encode_position(position_of(pairs[-1])))
        return Response({"next": next_url, "results": [pair_to_json(p) for p in pairs]})


def _page_size(request: Request) -> int:
    raw = request.query_params.get("page_size", "50")
    try:
        size = int(raw)
    except ValueError:
        raise ValidationError({"page_size": ["A whole number from 1 to 500."]}) from None
    if not 1 <= size <= 500:
        raise ValidationError({"page_size": ["A whole number from 1 to 500."]})
    return size


class BattleListView(ResearcherMixin, ListAPIView):
    """Voted battles with every turn and both responses (model names included)."""

    serializer_class = BattleOutput
    filterset_class = BattleFilterSet

    def get_queryset(self) -> Any:
        return battles_for_browse()


class ModelListView(ListAPIView):
    """Active models (public, like the leaderboard)."""

    authentication_classes: list[Any] = []
    permission_classes = [PublicReadOnly]
    serializer_class = ModelOutput
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return models_for_browse()


class ReleaseListCreateView(ResearcherMixin, ListAPIView):
    serializer_class = ReleaseOutput
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return DatasetRelease.objects.visible_to(self.request.user).select_related("created_by")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "links": signed_link_builder(self.request)}

    @extend_schema(
        request=ReleaseInput,
        responses={
            201: ReleaseOutput,
            409: OpenApiResponse(ErrorOutput, description="That name and version exist."),
        },
        summary="Create a release",
    )
    def post(self, request: Request) -> Response:
        data = ReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        f = v.get("filters") or {}
        filters = PairFilters(
            date_from=f.get("date_from"),
            date_to=f.get("date_to"),
            sources=tuple(f.get("sources") or PairFilters().sources),
            models=tuple(f.get("models") or ()),
            categories=tuple(f.get("categories") or ()),
            language=f.get("language") or "",
            min_agreement=f.get("min_agreement"),
            min_trust=f.get("min_trust"),
            include_ties=f.get("include_ties", False),
            include_both_bad=f.get("include_both_bad", False),
            include_flagged=f.get("include_flagged", False),
        )
        options = ExportOptions(
            test_fraction=v["test_fraction"],
            dedup_prompts=v["dedup_prompts"],
            scrub_pii=v["scrub_pii"],
            margin=v["margin"],
            license=v["license"],
        )
        release = services.release_create(
            user=request.user,
            name=v["name"],
            version=v["version"],
            format=v["format"],
            file_format=v["file_format"],
            filters=filters,
            options=options,
        )
        out = ReleaseOutput(release, context=self.get_serializer_context())
        return Response(out.data, status=status.HTTP_201_CREATED)


def _release_for(request: Request, public_id: str) -> DatasetRelease:
    release = DatasetRelease.objects.visible_to(request.user).filter(public_id=public_id).first()
    if release is None:
        raise NotFound("No such release.")
    return release


class ReleaseDetailView(ResearcherMixin, APIView):
    @extend_schema(responses=ReleaseOutput, summary="Release status, files and signed links")
    def get(self, request: Request, public_id: str) -> Response:
        release = _release_for(request, public_id)
        out = ReleaseOutput(release, context={"links": signed_link_builder(request)})
        return Response(out.data)


class ReleasePublishInput(serializers.Serializer):
    public = serializers.BooleanField(default=False)


class ReleasePublishView(ResearcherMixin, APIView):
    @extend_schema(
        request=ReleasePublishInput,
        responses={
            200: ReleaseOutput,
            409: OpenApiResponse(ErrorOutput, description="Not ready, or already published."),
        },
        summary="Publish (operators)",
    )
    def post(self, request: Request, public_id: str) -> Response:
        data = ReleasePublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        release = services.release_publish(
            user=request.user,
            release=_release_for(request, public_id),
            public=data.validated_data["public"],
        )
        out = ReleaseOutput(release, context={"links": signed_link_builder(request)})
        return Response(out.data)


class ReleaseRetryView(ResearcherMixin, APIView):
    @extend_schema(
        request=None,
        responses={
            202: ReleaseOutput,
            409: OpenApiResponse(
                ErrorOutput, description="Not failed or ready, or already published."
            ),
        },
        summary="Build a failed (or ready, unpublished) release again",
    )
    def post(self, request: Request, public_id: str) -> Response:
        release = services.release_rebuild(
            user=request.user, release=_release_for(request, public_id)
        )
        out = ReleaseOutput(release, context={"links": signed_link_builder(request)})
        return Response(out.data, status=status.HTTP_202_ACCEPTED)


class ReleaseDownloadView(ResearcherMixin, APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download one file of a release (streamed)",
    )
    def get(self, request: Request, public_id: str, name: str) -> FileResponse:
        path = services.release_file_path(_release_for(request, public_id), name)
        return file_response(path)


def file_response(path: Any) -> FileResponse:
    content_type = "text/plain; charset=utf-8"
    if path.name.endswith(".jsonl"):
        content_type = "application/jsonl; charset=utf-8"
    elif path.name.endswith(".gz"):
        content_type = "application/gzip"
    elif path.name.endswith(".parquet"):
        content_type = "application/vnd.apache.parquet"
    elif path.name.endswith(".md"):
        content_type = "text/markdown; charset=utf-8"
    return FileResponse(
        open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
        content_type=content_type,
        as_attachment=True,
        filename=path.name,
    )
