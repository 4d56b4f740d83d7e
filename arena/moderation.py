"""The moderation hook: refuse a prompt before any model is called.

A configurable blocklist (``ARENA_BLOCKLIST``) and, optionally, an OpenAI-compatible moderation
endpoint (``ARENA_MODERATION_URL`` with the key in the variable named by
``ARENA_MODERATION_KEY_ENV``). Unlike FastChat we never send a notice text to the models in place
of the prompt: a refused prompt changes nothing.
"""

from __future__ import annotations

import logging
import os

import httpx
from django.conf import settings

from arena.text import contains_blocked
from core.errors import ApplicationError

log = logging.getLogger(__name__)


class Moderated(ApplicationError):
    code = "moderated"
    status = 422


def moderate(text: str) -> None:
    """Raise Moderated if ``text`` may not be sent. Must be called outside any transaction."""
    if contains_blocked(text, settings.ARENA_BLOCKLIST):
        raise Moderated("This prompt is not allowed here. Please rephrase it.")
    url = settings.ARENA_MODERATION_URL
    if not url:
        return
    key = os.environ.get(settings.ARENA_MODERATION_KEY_ENV, "")
    try:
        response = httpx.post(
            url,
            json={"input": text[-4000:]},
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=5.0,
        )
        response.raise_for_status()
        flagged = any(r.get("flagged") for r in response.json().get("results", []))
    except (httpx.HTTPError, ValueError) as exc:
        # Fail closed, as FastChat does: an unreachable moderation service refuses the prompt.
        log.warning("moderation endpoint failed", extra={"error": type(exc).__name__})
        raise Moderated("Moderation is unavailable right now; please try again shortly.") from None
    if flagged:
        raise Moderated("This prompt was flagged by moderation. Please rephrase it.")
