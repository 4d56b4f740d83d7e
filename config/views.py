from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def coming_soon(request: HttpRequest, *, title: str, what: str) -> HttpResponse:
    """An honest placeholder for a section whose issue has not landed yet."""
    return render(request, "coming_soon.html", {"title": title, "what": what})
