"""What every page module uses: the access helpers, the mapping of domain errors to responses,
and the letters that name responses on screen.

Every page goes through one access helper; a user with no role in a project gets 404 (outsiders
learn nothing, not even that the project exists).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.html import escape

from annotations import selectors
from annotations.models import Assignment, Project
from annotations.selectors import Roles
from core.errors import ApplicationError

LETTERS = "ABCDEFGHIJ"  # one per response, up to models.MAX_K

Need = Literal["any", "annotator", "team", "manager"]
View = Callable[..., HttpResponse]


def project_for(request: HttpRequest, slug: str, *, need: Need = "any") -> tuple[Project, Roles]:
    """The project and the user's roles in it; 404 unless the user has the role ``need`` names."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404
    roles = selectors.roles_for(project, request.user)
    allowed = {
        "any": roles.any,
        "annotator": roles.annotator,
        "team": roles.team,
        "manager": roles.manager,
    }[need]
    if not allowed:
        raise Http404
    return project, roles


def assignment_for(request: HttpRequest, public_id: Any) -> Assignment:
    """The annotator's own assignment; anybody else's is 404."""
    a = (
        Assignment.objects.select_related("project", "item")
        .filter(public_id=public_id, annotator=request.user)
        .first()
    )
    if a is None or not selectors.roles_for(a.project, request.user).annotator:
        raise Http404
    return a


def app_errors(view: View) -> View:
    """Map domain errors to a message on the page it redirects back to (404 stays 404); an htmx
    request gets an alert fragment with the error's status instead."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            if request.headers.get("HX-Request"):
                return HttpResponse(
                    f'<span class="error" role="alert">{escape(exc.message)}</span>',
                    status=exc.status,
                )
            if exc.status == 404:
                raise Http404 from exc
            messages.error(request, exc.message)
            return redirect(request.get_full_path())

    return wrapper


def ranking_letters(ranking: list[list[int]] | None) -> str:
    """``[[1], [0, 2]]`` as ``"B > A = C"``; a dash when there is no ranking."""
    if not ranking:
        return "–"
    return " > ".join(" = ".join(LETTERS[i] for i in group) for group in ranking)
