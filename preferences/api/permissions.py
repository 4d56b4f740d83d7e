from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from rest_framework import permissions, throttling

from preferences.auth import DATASETS_APP, DATASETS_CODENAME
from preferences.models import ApiToken


class IsResearcher(permissions.BasePermission):
    """Pairs, battles and releases: users granted ``preferences.access_datasets``."""

    message = "You do not have access to preference datasets."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        granted = getattr(request.auth, "granted_datasets", None)  # read with a bearer token
        if granted is not None:  # has_perm's answer, without its two queries
            return bool(user.is_active and (user.is_superuser or granted))
        return bool(user.has_perm(f"{DATASETS_APP}.{DATASETS_CODENAME}"))


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """A budget per API token (sessions: per user), so one leaked token cannot starve a team.

    The rate is ``settings.API_THROTTLE_TOKEN`` or the ``API_THROTTLE_TOKEN`` environment
    variable (default 600/min), read per request.
    """

    scope = "token"

    def __init__(self) -> None:  # the rate is read per request, not frozen at import
        pass

    def get_rate(self) -> str:
        return getattr(settings, "API_THROTTLE_TOKEN", None) or os.environ.get(
            "API_THROTTLE_TOKEN", "600/min"
        )

    def allow_request(self, request: Any, view: Any) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"t{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            ident = f"a{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
