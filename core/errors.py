"""The domain error every service raises and every edge maps to a response.

HTML views show ``message``; the DRF exception handler returns ``{"code", "message"}`` with
``status``; consumers send an error frame. ``code`` is stable API surface: never reword it.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403


class Conflict(ApplicationError):
    code = "conflict"
    status = 409


class RateLimited(ApplicationError):
    code = "rate_limited"
    status = 429
