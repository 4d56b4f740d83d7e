"""One-use invitation links: a manager creates one, whoever opens it (logged in) joins the project."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from annotations.models import Invitation, Project
from annotations.selectors import forget_roles
from annotations.services.access import require_role
from core.errors import Conflict, NotFound


def invitation_create(
    *, project: Project, user: Any, email: str = "", as_reviewer: bool = False
) -> Invitation:
    """A new link into ``project`` (managers only); ``email`` is only a note of who it is for."""
    require_role(project, user, role="manager")
    return Invitation.objects.create(project=project, email=email, as_reviewer=as_reviewer)


def invitation_accept(*, token: Any, user: Any) -> Project:
    """Make ``user`` an annotator (or reviewer) of the invitation's project.

    Accepting again by the same user is a no-op; a link already used by someone else raises
    ``Conflict`` (``invitation_used``).
    """
    with transaction.atomic():
        inv = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(token=token)
            .first()
        )
        if inv is None:
            raise NotFound("This invitation does not exist.")
        if inv.accepted_by_id and inv.accepted_by_id != user.id:
            raise Conflict("This invitation has already been used.", code="invitation_used")
        (inv.project.reviewers if inv.as_reviewer else inv.project.annotators).add(user)
        forget_roles(user)
        if not inv.accepted_by_id:
            inv.accepted_by = user
            inv.accepted_at = timezone.now()
            inv.save(update_fields=["accepted_by", "accepted_at"])
        return inv.project
