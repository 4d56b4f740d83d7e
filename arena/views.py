"""Arena pages. One URL serves a page and its htmx fragments (django-template-partials)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from arena import services
from arena.fragments import battle_context
from arena.models import LLM, Battle
from core.errors import ApplicationError
from core.http import error_response

CONSENT_KEY = "arena_consent"


def _voter(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    return services.voter_key(request.session.session_key or "")


def _ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _error(request: HttpRequest, exc: ApplicationError, fallback: str) -> HttpResponse:
    """htmx: show the message in the page's flash area (a 200: htmx swaps no error status);
    otherwise a message and a redirect, or, when the arena is unavailable, a standalone 503
    page that needs neither the session nor the cache. Both carry ``Retry-After`` when the
    error gives one."""
    retry_after = exc.extra.get("retry_after")
    if request.htmx:
        response = render(
            request, "arena/_flash.html", {"error": exc.message, "code": exc.code}, status=200
        )
        response["HX-Retarget"] = "#flash"
        response["HX-Reswap"] = "innerHTML"
    elif isinstance(exc, services.ArenaUnavailable):
        response = error_response(
            request, 503, exc.code, "The arena is temporarily unavailable", exc.message
        )
    else:
        messages.error(request, exc.message)
        return redirect(fallback)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _domain_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            if exc.status == 404:
                return render(request, "arena/not_found.html", status=404)
            battle_id = kwargs.get("battle_id")
            fallback = (
                reverse("arena:battle", args=[battle_id]) if battle_id else reverse("arena:index")
            )
            return _error(request, exc, fallback)

    return wrapper


@_domain_errors
def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.session.get(CONSENT_KEY):
            raise ApplicationError(
                "Please accept the terms before your first battle.", code="consent_required"
            )
        battle = services.battle_start(
            voter=_voter(request),
            ip=_ip(request),
            prompt=request.POST.get("prompt", ""),
            mode=request.POST.get("mode", Battle.Mode.ANONYMOUS),
            model_a=request.POST.get("model_a") or None,
            model_b=request.POST.get("model_b") or None,
        )
        url = reverse("arena:battle", args=[battle.public_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    context = {
        "consented": bool(request.session.get(CONSENT_KEY)),
        "models": LLM.objects.for_arena().only("slug", "display_name"),
        "mode": request.GET.get("mode", "anonymous"),
        "max_chars": services.settings.ARENA_MAX_PROMPT_CHARS,
    }
    return render(request, "arena/index.html", context)


@require_POST
def consent(request: HttpRequest) -> HttpResponse:
    request.session[CONSENT_KEY] = True
    _voter(request)
    if request.htmx:
        return HttpResponse("")
    return redirect(request.POST.get("next") or reverse("arena:index"))


@require_GET
@_domain_errors
def battle(request: HttpRequest, battle_id: str) -> HttpResponse:
    obj = services.battle_for_voter(public_id=battle_id, voter=_voter(request))
    return render(request, "arena/battle.html", battle_context(obj))


@require_POST
@_domain_errors
def turn(request: HttpRequest, battle_id: str) -> HttpResponse:
    voter = _voter(request)
    services.turn_add(battle_id=battle_id, voter=voter, prompt=request.POST.get("prompt", ""))
    obj = services.battle_for_voter(public_id=battle_id, voter=voter)
    if request.htmx:
        return render(request, "arena/battle.html#conversation", battle_context(obj))
    return redirect("arena:battle", battle_id=battle_id)


@require_POST
@_domain_errors
def vote(request: HttpRequest, battle_id: str) -> HttpResponse:
    voter = _voter(request)
    services.vote_cast(
        battle_id=battle_id, voter=voter, winner=request.POST.get("winner"), ip=_ip(request)
    )
    if request.htmx:
        obj = services.battle_for_voter(public_id=battle_id, voter=voter)
        return render(request, "arena/battle.html#conversation", battle_context(obj))
    return redirect("arena:battle", battle_id=battle_id)


@require_POST
@_domain_errors
def regenerate(request: HttpRequest, battle_id: str, response_id: str) -> HttpResponse:
    voter = _voter(request)
    services.response_regenerate(battle_id=battle_id, voter=voter, response_id=response_id)
    obj = services.battle_for_voter(public_id=battle_id, voter=voter)
    if request.htmx:
        return render(request, "arena/battle.html#conversation", battle_context(obj))
    return redirect("arena:battle", battle_id=battle_id)


@require_POST
@_domain_errors
def stop(request: HttpRequest, battle_id: str, response_id: str) -> HttpResponse:
    services.response_stop(battle_id=battle_id, voter=_voter(request), response_id=response_id)
    if request.htmx:
        return HttpResponse(status=204)
    return redirect("arena:battle", battle_id=battle_id)
