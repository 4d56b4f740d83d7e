"""Reads the arena pages and the consumer share."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.core.cache import cache

from arena.models import Battle, Response, Turn
from arena.rendering import render_markdown
from arena.services import parse_public_id
from core.errors import NotFound


def rendered(response: Response) -> str:
    """Markdown of a finished response rendered once and cached per attempt."""
    key = f"arena:md:{response.public_id}:{response.attempt}:{response.state}"
    html = cache.get(key)
    if html is None:
        html = render_markdown(response.text)
        cache.set(key, html, timeout=24 * 3600)
    return html


@dataclass
class BattleView:
    battle: Battle
    turns: list[Turn]
    last: Turn
    votable: bool
    voted: bool
    can_continue: bool
    any_running: bool


def battle_view(battle: Battle) -> BattleView:
    """The whole conversation with its responses, in two queries."""
    turns = list(battle.turns.order_by("index"))
    responses = list(Response.objects.filter(turn__battle=battle).order_by("side"))
    return _view(battle, turns, responses)


def last_turn_view(battle: Battle) -> BattleView:
    """Only the last turn (what the live page's pushed fragments show), in one query: a turn has
    exactly two responses, so the last turn's are the first two by descending turn index."""
    responses = sorted(
        Response.objects.filter(turn__battle=battle)
        .select_related("turn")
        .order_by("-turn__index", "side")[:2],
        key=lambda r: r.side,
    )
    return _view(battle, [responses[0].turn], responses)


def _view(battle: Battle, turns: list[Turn], responses: list[Response]) -> BattleView:
    by_turn: dict[int, list[Response]] = {}
    for response in responses:
        if response.is_finished and response.state != Response.State.FAILED:
            response.html = rendered(response)  # type: ignore[attr-defined]
        by_turn.setdefault(response.turn_id, []).append(response)
    for turn in turns:
        turn.pair = by_turn.get(turn.pk, [])  # type: ignore[attr-defined]
    last = turns[-1]
    last_states = {r.state for r in last.pair}  # type: ignore[attr-defined]
    voted = battle.state == Battle.State.VOTED
    votable = not voted and last_states <= {Response.State.DONE, Response.State.STOPPED}
    return BattleView(
        battle=battle,
        turns=turns,
        last=last,
        votable=votable,
        voted=voted,
        can_continue=not voted and last_states == {Response.State.DONE},
        any_running=bool(last_states & {Response.State.PENDING, Response.State.STREAMING}),
    )


Row = tuple[str, str, int, str]  # a response of the last turn: public id, side, attempt, state


def socket_last_turn(public_id: str, voter: str) -> tuple[int, str, list[Row], bool] | None:
    """(battle pk, battle public id, the last turn's responses, voted) if ``voter`` owns the
    battle, else None: one query (a turn has exactly two responses)."""
    try:
        uid = parse_public_id(public_id, "battle")
    except NotFound:
        return None
    rows = list(
        Response.objects.filter(turn__battle__public_id=uid)
        .order_by("-turn__index", "side")
        .values_list(
            "public_id", "side", "attempt", "state",
            "turn__battle_id", "turn__battle__voter", "turn__battle__state",
        )[:2]
    )  # fmt: skip
    if not rows or not hmac.compare_digest(rows[0][5], voter):
        return None
    voted = rows[0][6] == Battle.State.VOTED
    responses = [(str(p), side, attempt, state) for p, side, attempt, state, *_ in rows]
    return rows[0][4], str(uid), responses, voted
