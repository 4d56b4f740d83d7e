"""Reads the arena pages and the consumer share."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.db import connection
from numpy.typing import NDArray

from arena.counts import copy_rows
from arena.models import LLM, Battle, Response, Turn, Vote
from arena.rendering import render_markdown
from arena.services import parse_public_id
from core.errors import NotFound
from core.pgcopy import int_array


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


# --- vote ids (the rating recompute's count catch-up) --------------------------------------------

_IDS_PER_COPY_ROW = 131072  # ids per array row of the COPY (see arena.counts.copy_rows)
_MAX_GAPS = 50_000  # above this many id gaps, reading every id is the cheaper check


def vote_ids() -> NDArray[np.int64]:
    """Every vote id, ascending (on PostgreSQL one binary COPY of id arrays)."""
    if connection.vendor != "postgresql":
        return np.array(sorted(Vote.objects.values_list("id", flat=True)), dtype=np.int64)
    rows = copy_rows(
        f"SELECT array_agg(id) FROM {Vote._meta.db_table} GROUP BY id / {_IDS_PER_COPY_ROW}"
    )
    if not rows:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate([int_array(r[0]) for r in rows]))


def vote_ids_since(read: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Vote ids committed since ``read`` (sorted ids) was read, and a mask of read ids gone.

    Cheap in the usual case: new votes have ids above the last one read, or fill a gap below
    it (a transaction still open at read time; gaps are few: rollbacks, deletions); one count
    over the read id range tells whether any read vote was deleted. Only then, or when the gaps
    are many, are all ids read.
    """
    if not read.size:
        return vote_ids(), np.zeros(0, dtype=bool)
    lo, hi = int(read[0]), int(read[-1])
    if hi - lo + 1 - read.size <= _MAX_GAPS:
        gaps = np.setdiff1d(np.arange(lo, hi + 1), read, assume_unique=True)
        new, in_range = _ids_outside(lo, hi, gaps)
        if in_range == read.size + int(((new >= lo) & (new <= hi)).sum()):
            return new, np.zeros(read.size, dtype=bool)
    now = vote_ids()
    return (
        np.setdiff1d(now, read, assume_unique=True),
        ~np.isin(read, now, assume_unique=True),
    )


def _ids_outside(lo: int, hi: int, gaps: NDArray[np.int64]) -> tuple[NDArray[np.int64], int]:
    """Ids outside [lo, hi] or in ``gaps`` (sorted), and how many ids lie in [lo, hi]."""
    table = Vote._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT id FROM {table} WHERE id > %s OR id < %s OR id = ANY(%s)",
                [hi, lo, gaps.tolist()],
            )
        else:
            listed = f" OR id IN ({', '.join(map(str, gaps.tolist()))})" if gaps.size else ""
            cursor.execute(f"SELECT id FROM {table} WHERE id > %s OR id < %s{listed}", [hi, lo])
        new = np.sort(np.array([r[0] for r in cursor.fetchall()], dtype=np.int64))
        cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE id BETWEEN %s AND %s", [lo, hi])
        in_range = int(cursor.fetchone()[0])
    return new, in_range


def battles_known(*, public_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``public_ids`` are stored battles (an import skips them)."""
    return set(Battle.objects.filter(public_id__in=public_ids).values_list("public_id", flat=True))


# --- models and flagged votes (the leaderboard's reads) ------------------------------------------


def llms_by_pk(pks: list[int]) -> dict[int, LLM]:
    """The LLMs with the given pks (unknown pks are simply absent)."""
    return {m.pk: m for m in LLM.objects.filter(pk__in=pks)}


def llm_pks_for_arena() -> list[int]:
    """Pks of the models the arena may sample."""
    return list(LLM.objects.for_arena().values_list("pk", flat=True))


def flagged_vote_categories() -> list[list[str]]:
    """The battle categories of each flagged vote of an anonymous battle (flagged votes are few:
    only they are read)."""
    rows = (
        Vote.objects.filter(battle__mode=Battle.Mode.ANONYMOUS)
        .exclude(flags=[])
        .exclude(flags__isnull=True)
        .values_list("battle__categories", flat=True)
    )
    return [list(cats or []) for cats in rows]
