from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError, NotFound
from preferences.models import ApiToken

TOKEN_PREFIX = "pa_"
MAX_TOKENS_PER_USER = 50


def token_create(
    *, user: AbstractBaseUser, name: str, scope: str = ApiToken.SCOPE_READ, days: int | None = 90
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the secret, which is never retrievable again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApplicationError("A token needs a name of 1-100 characters.", code="invalid_name")
    if scope not in dict(ApiToken.SCOPES):
        raise ApplicationError("Scope must be 'read' or 'write'.", code="invalid_scope")
    if days is not None and not 1 <= days <= 366:
        raise ApplicationError("Expiry must be 1-366 days, or none.", code="invalid_expiry")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        if ApiToken.objects.filter(user=user).usable().count() >= MAX_TOKENS_PER_USER:
            raise ApplicationError("Too many active tokens; revoke one first.", code="too_many")
        token = ApiToken.objects.create(
            user=user,
            name=name,
            scope=scope,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            digest=ApiToken.hash_secret(secret),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
    return token, secret


def token_revoke(*, user: AbstractBaseUser, public_id: str) -> ApiToken:
    # Conditional update: revoking twice keeps the first revocation time.
    updated = ApiToken.objects.filter(
        user=user, public_id=public_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = ApiToken.objects.filter(user=user, public_id=public_id).first()
    if token is None:
        raise NotFound("No such token.")
    del updated
    return token
