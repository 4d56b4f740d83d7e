"""The OpenAPI schema's shared parts: the ``Error`` component and the error responses.

A module of its own, not part of ``core.api``: DRF imports ``core.api`` while it builds
``APIView`` (the parser setting), and drf-spectacular's AutoSchema imports DRF's generic views,
so one module holding both is an import cycle.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import permissions, serializers

from core.api import CreatedCursorPagination, PublicReadOnly


@extend_schema_serializer(component_name="Error")
class ErrorOutput(serializers.Serializer):
    """The one error body (see ``exception_handler``): a stable ``code`` and a readable message."""

    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        required=False, help_text="Validation errors only: field -> messages."
    )
    retry_after = serializers.IntegerField(
        required=False, help_text="Throttling only: seconds until a retry may succeed."
    )


MAX_PAGE_SIZE = CreatedCursorPagination.max_page_size

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The request is not valid (`fields` says where).", {}),
    401: (
        "No valid credentials: a missing, unknown, revoked or expired bearer token.",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`."}},
    ),
    403: ("Authenticated, but not allowed (role, token scope, or a session-only operation).", {}),
    404: ("No such object, or not one the caller may see.", {}),
    429: ("Throttled: wait `retry_after` seconds.", _RETRY_AFTER),
    503: ("A dependency (database, cache, queue) is down or restarting; retry.", _RETRY_AFTER),
}


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus what every operation here shares: the error responses
    a view's authentication, permissions, throttles, parameters and body make possible, all
    with the ``Error`` component, and ``page_size`` bounded like the pagination enforces."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "page_size" and parameter.get("in") == "query":
                parameter["schema"].update(minimum=1, maximum=MAX_PAGE_SIZE)
        error = self.resolve_serializer(ErrorOutput, "response").ref
        responses = operation.setdefault("responses", {})
        for status in self._error_statuses(operation):
            description, headers = _ERRORS[status]
            response: dict[str, Any] = {
                "description": description,
                "content": {"application/json": {"schema": error}},
            }
            if headers:
                response["headers"] = headers
            responses.setdefault(str(status), response)
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> list[int]:
        statuses = []
        if operation.get("parameters") or "requestBody" in operation:
            statuses.append(400)
        authenticators = self.view.get_authenticators()
        if authenticators and authenticators[0].authenticate_header(self.view.request):
            statuses.append(401)
        if authenticators or any(
            not isinstance(p, (permissions.AllowAny, PublicReadOnly))
            for p in self.view.get_permissions()
        ):
            statuses.append(403)
        if any(p.get("in") == "path" for p in operation.get("parameters", [])):
            statuses.append(404)
        if self.view.get_throttles():
            statuses.append(429)
        statuses.append(503)
        return statuses
