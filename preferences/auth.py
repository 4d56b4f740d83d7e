"""DRF authentication by ``Authorization: Bearer <token>`` against hashed API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from preferences.models import ApiToken

DATASETS_APP, DATASETS_CODENAME = "preferences", "access_datasets"


def _granted_datasets() -> Exists:
    """Whether the row's ``user_id`` holds ``preferences.access_datasets`` directly or through a
    group (ModelBackend's rule, which ``has_perm`` reads in two more queries)."""
    perm = Permission.objects.filter(
        content_type__app_label=DATASETS_APP, codename=DATASETS_CODENAME
    )
    return Exists(perm.filter(user=OuterRef("user_id"))) | Exists(
        perm.filter(group__user=OuterRef("user_id"))
    )


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """The token, its user and the user's dataset permission (``granted_datasets``, read by
    ``IsResearcher``) in one query."""

    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() not in {"bearer", "token"}:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        digest = ApiToken.hash_secret(parts[1])
        token = (
            ApiToken.objects.select_related("user")
            .annotate(granted_datasets=_granted_datasets())
            .filter(digest=digest)
            .first()
        )
        if token is None or not token.is_usable or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        # Touch last_used at most once a minute: no write per request.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class SessionOnly(permissions.BasePermission):
    """Token management needs a logged-in session: a (valid) token cannot mint or revoke
    tokens, so it gets 403; a missing or bad token still gets the 401 Bearer challenge."""

    message = "Tokens are managed from a logged-in session, not with a token."

    def has_permission(self, request: Any, view: Any) -> bool:
        return not isinstance(request.auth, ApiToken)


class TokenScope(permissions.BasePermission):
    """A read token may only use safe methods; session users are not limited by scope."""

    message = "This token's scope does not allow writes."

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and request.method not in permissions.SAFE_METHODS:
            return token.allows(ApiToken.SCOPE_WRITE)
        return True


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class BearerTokenScheme(OpenApiAuthenticationExtension):
        target_class = "preferences.auth.BearerTokenAuthentication"
        name = "bearerAuth"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {"type": "http", "scheme": "bearer", "description": "An API token (pa_...)"}

except ImportError:  # pragma: no cover - drf-spectacular is a runtime dependency
    pass
