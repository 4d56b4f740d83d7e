"""API skeleton shared by every app: error shape, pagination, the public-read permission."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.defaults import page_not_found
from rest_framework import exceptions, parsers, permissions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from core.errors import ApplicationError
from core.middleware import has_control_characters


class InvalidCursor(exceptions.APIException):
    status_code = 400
    default_code = "invalid_cursor"
    default_detail = "The cursor is not one this API gave out."


class CreatedCursorPagination(CursorPagination):
    """Stable pages over growing tables: a cursor on ``-created``, never an offset.

    A cursor is client input: one that does not decode, or whose position is not a timestamp
    (``p=-1`` reached the database as a date and was a 500), is a 400 ``invalid_cursor``.
    """

    ordering = "-created"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int:
        """``page_size`` is 1-500 as the schema says: DRF fell back to the default for 0, -5 or
        ``x`` and clamped 900 to 500, so a client's mistake came back as a 200 it did not ask for."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return size

    def decode_cursor(self, request: Any) -> Any:
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise InvalidCursor() from None
        if cursor is not None and cursor.position is not None:
            try:
                parsed = parse_datetime(cursor.position)
            except ValueError:
                parsed = None
            if parsed is None:
                raise InvalidCursor()
        return cursor


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: an address under ``/api/`` that matches no route (a malformed UUID in the
    path, say) answers the API's JSON error like every other API 404, not an HTML page."""
    if request.path.startswith("/api/"):
        body = {"code": "not_found", "message": "No such address in the API."}
        return JsonResponse(body, status=404)
    return page_not_found(request, exception)


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
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (this module's JSONParser)
    # when it is first imported, so importing it at the top made a cycle whenever this module
    # was the first to load DRF's views (e.g. DRF's own system check in a Celery worker).
    from rest_framework.views import exception_handler as drf_exception_handler

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


MAX_JSON_DEPTH = 32  # our deepest request body (a ranking of tie groups in an object) is 4


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the limits its input needs: nesting deeper than ``MAX_JSON_DEPTH``
    (deep enough nesting was a RecursionError, a 500) and strings with NUL or other control
    characters (PostgreSQL refuses NUL in text) are a 400 before any view sees them."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON nested more than {MAX_JSON_DEPTH} levels deep."
            ) from None
        _check_json(data)
        return data


def _check_json(data: Any) -> None:
    """Depth and strings of parsed JSON, walked without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            items = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            items = value
        else:
            if isinstance(value, str) and has_control_characters(value):
                raise exceptions.ParseError(
                    "A JSON string contains a NUL or another control character."
                )
            continue
        if depth > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.")
        stack.extend((item, depth + 1) for item in items)
