"""Creating annotation projects: who may create one, and the slug a new project gets."""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify

from annotations.models import MAX_K, Project
from annotations.selectors import forget_roles
from core.errors import ApplicationError, PermissionDenied


def may_create_projects(user: Any) -> bool:
    """Staff, and active users with the ``annotations.add_project`` permission."""
    return bool(
        getattr(user, "is_authenticated", False)
        and user.is_active
        and (user.is_staff or user.has_perm("annotations.add_project"))
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "project"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def project_create(*, owner: Any, **fields: Any) -> Project:
    """A new project owned by ``owner`` (staff, or users with the ``add_project`` permission).

    ``fields`` are the model's fields; the slug defaults to one derived from the name. Raises
    Django's ``ValidationError`` when the model's own validation fails.
    """
    if not may_create_projects(owner):
        raise PermissionDenied("You may not create annotation projects.")
    fields.setdefault("slug", _unique_slug(fields.get("name", "")))
    project = Project(owner=owner, **fields)
    project.full_clean()
    if project.k > MAX_K:
        raise ApplicationError("K is too large.", code="invalid")
    project.save()
    forget_roles(owner)
    return project
