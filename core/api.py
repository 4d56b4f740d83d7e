"""API skeleton shared by every app: error shape, pagination, the public-read permission."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, permissions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError


class CreatedCursorPagination(CursorPagination):
    """Stable pages over growing tables: a cursor on ``-created``, never an offset."""

    ordering = "-created"
    page_size_query_param = "page_size"
    max_page_size = 500


class PublicReadOnly(permissions.BasePermission):
    """Leaderboards and model lists: anyone may read; nobody writes through these views."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS


def _code_for(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return getattr(exc, "default_code", "error")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error is ``{"code": str, "message": str, ...}`` with a stable ``code``.

    Validation errors add ``fields`` (field -> list of messages); throttling adds ``retry_after``.
    """
    if isinstance(exc, ApplicationError):
        return Response({"code": exc.code, "message": exc.message, **exc.extra}, status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    body: dict[str, Any]
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"code": "invalid", "message": "The request is not valid.", "fields": fields}
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (list, dict)) else "Request failed."
        body = {"code": _code_for(exc), "message": message}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            body["retry_after"] = int(exc.wait)
    response.data = body
    return response
