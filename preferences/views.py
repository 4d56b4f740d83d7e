"""Releases page (live progress by htmx polling), signed/public downloads, API token settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from core.errors import ApplicationError
from core.http import error_response
from preferences import services
from preferences.api.views import file_response
from preferences.forms import ReleaseForm, TokenForm
from preferences.models import ApiToken, DatasetRelease


def _can_build(request: HttpRequest) -> bool:
    return request.user.is_authenticated and request.user.has_perm("preferences.access_datasets")


def _get_release_for_viewer(request: HttpRequest, public_id: str) -> DatasetRelease:
    release = DatasetRelease.objects.visible_to(request.user).filter(public_id=public_id).first()
    if release is None:
        raise Http404("No such release.")
    return release


def _links(release: DatasetRelease) -> dict[str, str]:
    from django.urls import reverse

    if not release.is_downloadable:
        return {}
    if release.public and release.status == DatasetRelease.Status.PUBLISHED:
        return {
            f["name"]: reverse(
                "preferences:file-public",
                kwargs={"public_id": release.public_id, "name": f["name"]},
            )
            for f in release.files
        }
    return {
        f["name"]: reverse(
            "preferences:file-signed",
            kwargs={"token": services.release_signed_token(release, f["name"]), "name": f["name"]},
        )
        for f in release.files
    }


@require_http_methods(["GET", "POST"])
def release_list(request: HttpRequest) -> HttpResponse:
    form = ReleaseForm(request.POST or None) if _can_build(request) else None
    if request.method == "POST":
        if form is None:
            return HttpResponse("You cannot build releases.", status=403)
        if form.is_valid():
            try:
                release = services.release_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    version=form.cleaned_data["version"],
                    format=form.cleaned_data["format"],
                    file_format=form.cleaned_data["file_format"],
                    filters=form.filters(),
                    options=form.options(),
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Release {release} is being built.")
                return redirect("preferences:release-list")
    releases = list(
        DatasetRelease.objects.visible_to(request.user).select_related("created_by")[:100]
    )
    rows = [(r, _links(r)) for r in releases]
    return render(
        request,
        "preferences/releases.html",
        {"rows": rows, "form": form},
        status=400 if form is not None and form.errors else 200,
    )


@login_required
@require_POST
def release_retry(request: HttpRequest, public_id: str) -> HttpResponse:
    """Build a failed (or ready, unpublished) release again; back to the releases page."""
    release = _get_release_for_viewer(request, public_id)
    try:
        services.release_rebuild(user=request.user, release=release)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Release {release} is being built again.")
    return redirect("preferences:release-list")


@require_GET
def release_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """The release page; under htmx, only its status row (polled while it builds)."""
    release = _get_release_for_viewer(request, public_id)
    context = {"release": release, "links": _links(release)}
    if getattr(request, "htmx", False):
        return render(request, "preferences/releases.html#release-row", context)
    return render(request, "preferences/release_detail.html", context)


@require_safe  # GET and HEAD: fsspec (datasets, pandas) asks for the size with HEAD first
def file_signed(request: HttpRequest, token: str, name: str) -> HttpResponse:
    """A signed, expiring link: no headers needed (pandas / datasets / curl)."""
    try:
        path = services.release_resolve_token(token, name)
    except ApplicationError as exc:  # expired, tampered, another file's link: say which
        title = "Link expired" if exc.code == "link_expired" else "Download link not valid"
        return error_response(request, exc.status, exc.code, title, exc.message)
    return file_response(path)


@require_safe
def file_public(request: HttpRequest, public_id: str, name: str) -> FileResponse:
    release = DatasetRelease.objects.filter(
        public_id=public_id, public=True, status=DatasetRelease.Status.PUBLISHED
    ).first()
    if release is None:
        raise Http404("No such public release.")
    try:
        return file_response(services.release_file_path(release, name))
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


@login_required
@require_http_methods(["GET", "POST"])
def token_settings(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.token_create(user=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            form = TokenForm()
    tokens = ApiToken.objects.filter(user=request.user)  # type: ignore[misc]
    return render(
        request,
        "preferences/tokens.html",
        {"form": form, "tokens": tokens, "secret": secret},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        token = services.token_revoke(user=request.user, public_id=public_id)  # type: ignore[arg-type]
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("preferences:tokens")
