"""The battle page's template partials: the context they render with, and the live fragments.

The page (``arena.views``) and what is pushed over the battle socket (by the generation task
and by the consumer when a page connects) render the same partials of ``arena/battle.html``.
Pushed fragments are htmx out-of-band swaps (``oob``): the finished panes of the last turn, the
vote bar and the composer. Before the vote they name sides, never models.
"""

from __future__ import annotations

import logging
from typing import Any

from django.template.loader import render_to_string

from arena import selectors, streaming
from arena.limits import REDIS_DOWN
from arena.models import Battle

log = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 30


def battle_context(battle: Battle) -> dict[str, Any]:
    """The page's context: the whole conversation and the socket to join."""
    view = selectors.battle_view(battle)
    return {
        "v": view,
        "battle": battle,
        "revealed": view.voted,
        "ws_url": f"/ws/arena/{battle.public_id}/",
    }


def render_live_update(battle_public_id: str) -> str:
    """Out-of-band fragments for the live page: finished panes of the last turn, the vote bar and
    the composer ('' when the battle does not exist)."""
    battle = (
        Battle.objects.select_related("model_a", "model_b")
        .filter(public_id=battle_public_id)
        .first()
    )
    if battle is None:
        return ""
    view = selectors.last_turn_view(battle)
    # Pushed fragments have no request: htmx sends the CSRF header set once in base.html.
    context = {"v": view, "battle": battle, "revealed": view.voted, "oob": True}
    parts = [
        render_to_string("arena/battle.html#response-pane", {**context, "r": response})
        for response in view.last.pair  # type: ignore[attr-defined]
        if response.is_finished
    ]
    parts.append(render_to_string("arena/battle.html#vote-bar", context))
    parts.append(render_to_string("arena/battle.html#composer", context))
    return "\n".join(parts)


def push_live_update(battle_public_id: str) -> None:
    """Render the live fragments and send them to the battle's pages (from synchronous code, on
    the producer loop: after the stream's own frames, which it has awaited). Best effort: when
    the channel layer is down the push is logged and dropped; the saved result is what the page
    shows on its next load or socket reconnect."""
    html = render_live_update(battle_public_id)
    if not html:
        return
    try:
        streaming.run(streaming.send_html(battle_public_id, html), timeout=PUSH_TIMEOUT_SECONDS)
    except (*REDIS_DOWN, TimeoutError) as exc:
        log.warning(
            "live update not pushed: channel layer unavailable",
            extra={"battle": battle_public_id, "error": type(exc).__name__},
        )
