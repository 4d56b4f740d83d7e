"""Requests no view should see, refused before any of them runs.

- A method outside HTTP's usual set (TRACE, CONNECT, anything invented) gets 405 with ``Allow``;
  before this, TRACE reached the CSRF check and got a misleading 403.
- A NUL or other C0 control character (tab, newline and carriage return aside) in the path, the
  query string or a form field gets 400: PostgreSQL refuses NUL in text (a filter value with one
  was a 500), and no field of ours means anything with the others. JSON bodies get the same check
  in ``core.api.JSONParser``.

The answer is the API's JSON error shape under ``/api/`` and a short page elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse

from core.http import error_response

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def has_control_characters(text: str) -> bool:
    return CONTROL.search(text) is not None


def _bad_part(request: HttpRequest) -> str | None:
    if has_control_characters(request.path):
        return "the address"
    if has_control_characters(unquote_plus(request.META.get("QUERY_STRING", ""))):
        return "a query parameter"
    if request.method == "POST" and request.content_type in FORMS:
        for key, values in request.POST.lists():
            if has_control_characters(key) or any(map(has_control_characters, values)):
                return f"the form field {key[:40]!r}"
    return None


class RequestGuard:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ALLOWED_METHODS:
            response = error_response(
                request,
                405,
                "method_not_allowed",
                "Method not allowed",
                f"{request.method} is not a method this site answers.",
            )
            response["Allow"] = ", ".join(ALLOWED_METHODS)
            return response
        try:
            part = _bad_part(request)
        except (RequestDataTooBig, TooManyFieldsSent) as exc:
            return error_response(request, 413, "too_large", "Request too large", str(exc))
        if part is not None:
            return error_response(
                request,
                400,
                "invalid",
                "Bad request",
                f"{part[0].upper()}{part[1:]} contains a NUL or another control character.",
            )
        return self.get_response(request)
