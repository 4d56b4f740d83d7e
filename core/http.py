"""The edges' answers when something fails before or around a view.

``error_response`` is the one shape: the API's JSON error under ``/api/``, a standalone page
elsewhere (``templates/error.html`` needs no session, cache or database, so it renders when one
of those is what failed). ``server_error`` is the project's ``handler500``: an exception that
means a dependency is down or restarting (PostgreSQL, Redis, the broker) becomes a 503 that says
so, with ``Retry-After``; anything else stays a 500.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

RETRY_AFTER_SECONDS = 5


def error_response(
    request: HttpRequest, status: int, code: str, title: str, message: str
) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"code": code, "message": message}, status=status)
    html = render_to_string("error.html", {"title": title, "message": message})
    return HttpResponse(html, status=status)


def _dependency_down(exc: BaseException | None) -> str | None:
    """Which dependency an exception says is unavailable, or None."""
    import redis.exceptions
    from kombu.exceptions import OperationalError as BrokerError

    if isinstance(exc, OperationalError | InterfaceError):
        return "the database"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "the cache and message service"
    if isinstance(exc, BrokerError):
        return "the background-work queue"
    return None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: Django calls it inside the ``except`` block of the failed request."""
    dependency = _dependency_down(sys.exc_info()[1])
    if dependency is None:
        return error_response(
            request,
            500,
            "server_error",
            "Something went wrong",
            "The error has been logged. Please try again.",
        )
    response = error_response(
        request,
        503,
        "service_unavailable",
        "Temporarily unavailable",
        f"Preference Arena cannot reach {dependency} right now. Nothing you saved is lost; "
        f"please try again in a few seconds.",
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
