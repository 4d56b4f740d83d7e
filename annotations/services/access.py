"""The role check every write of the annotation workflow starts with."""

from __future__ import annotations

from typing import Any, Literal

from annotations.models import Project
from annotations.selectors import roles_for
from core.errors import NotFound, PermissionDenied

Role = Literal["annotator", "reviewer", "manager"]


def require_role(project: Project, user: Any, *, role: Role) -> None:
    """Raise unless ``user`` holds ``role`` in ``project`` (managers count as reviewers).

    A user with no role at all gets ``NotFound``, so outsiders learn nothing, not even that the
    project exists; a member lacking the role gets ``PermissionDenied``.
    """
    roles = roles_for(project, user)
    if not roles.any:
        raise NotFound("No such project.")
    allowed = {
        "annotator": roles.annotator,
        "reviewer": roles.reviewer or roles.manager,
        "manager": roles.manager,
    }[role]
    if not allowed:
        raise PermissionDenied(f"You are not a {role} of this project.")
