from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from preferences import services
from preferences.api.serializers import MeOutput, TokenCreatedOutput, TokenInput, TokenOutput
from preferences.models import ApiToken


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

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]
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
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=TokenOutput, summary="Revoke a token")
    def post(self, request: Request, public_id: str) -> Response:
        token = services.token_revoke(user=request.user, public_id=public_id)
        return Response(TokenOutput(token).data)
