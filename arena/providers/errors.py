"""Typed provider errors.

Every error carries two texts: ``user_message``, fixed per class and fit to show a voter, and
``detail``, for operators and logs. Neither ever contains the API key or auth headers: ``detail``
passes through :func:`redact` with the endpoint's key before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every non-empty secret (and its ``Bearer`` form) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class ProviderError(Exception):
    """Base of all provider failures.

    ``retryable`` says whether the same request may succeed if sent again; ``retry_after`` is the
    server's requested wait in seconds, when it gave one; ``status`` is the HTTP status, if any.
    """

    user_message = "The model could not answer. Please try again."
    retryable = False
    attempts = 0  # HTTP attempts made before the call gave up (set by the engine)

    def __init__(
        self,
        detail: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.detail}{status}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class Timeout(ProviderError):
    """Connecting, the first token, a silence between chunks or the whole call took too long."""

    user_message = "The model took too long to answer."
    retryable = True


class RateLimited(ProviderError):
    """The provider answered 429 (or a rate-limit error event)."""

    user_message = "The model is busy right now. Please try again in a moment."
    retryable = True


class AuthenticationFailed(ProviderError):
    """The provider refused our credentials (401/403). Never retried."""

    user_message = "The model is unavailable at the moment."


class BadRequest(ProviderError):
    """The provider refused the request itself (other 4xx), e.g. a prompt that is too long."""

    user_message = "The model could not accept this request."


class UpstreamError(ProviderError):
    """The provider failed: a 5xx, a dropped or refused connection, an error event."""

    user_message = "The model's service had a problem. Please try again."
    retryable = True


class MalformedStream(ProviderError):
    """The provider answered with something we cannot parse (bad JSON, wrong content type)."""

    user_message = "The model returned an unreadable answer."


class CircuitOpen(ProviderError):
    """Recent calls to this provider kept failing, so the call was refused without trying."""

    user_message = "The model is temporarily unavailable."
