"""Arena write operations: start a battle, add a turn, regenerate or stop a response, vote.

Every function owns its transaction; generation is enqueued after commit; moderation (a network
call) runs before any transaction opens. Errors are ``ApplicationError`` subclasses with a
stable ``code`` that HTML views, the API and consumers map to responses.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from arena import limits, moderation, recovery, sampling, streaming
from arena.counts import counts_add_vote, counts_add_vote_sql
from arena.metrics import BATTLES_STARTED, VOTES_CAST
from arena.models import LLM, Battle, Response, Turn, Vote
from arena.text import battle_categories, detect_language, looks_like_code
from core.background import enqueue
from core.errors import ApplicationError, Conflict, NotFound


def _digest(kind: str, value: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{kind}:{value}".encode(), hashlib.sha256
    ).hexdigest()[:40]


def voter_key(session_key: str) -> str:
    """Pseudonymous voter id derived from the session: never the session key itself."""
    return _digest("voter", session_key)


def ip_key(ip: str) -> str:
    return _digest("ip", ip) if ip else ""


class InvalidPrompt(ApplicationError):
    code = "invalid_prompt"


def _clean_prompt(prompt: object) -> str:
    if not isinstance(prompt, str):
        raise InvalidPrompt("The prompt must be text.")
    text = prompt.replace("\x00", "").strip()
    if not text:
        raise InvalidPrompt("Type a prompt first.")
    if len(text) > settings.ARENA_MAX_PROMPT_CHARS:
        raise InvalidPrompt(
            f"The prompt is {len(text):,} characters long; the limit is "
            f"{settings.ARENA_MAX_PROMPT_CHARS:,}."
        )
    return text


def _new_turn(battle: Battle, index: int, prompt: str, *, language: str | None = None) -> Turn:
    turn = Turn.objects.create(
        battle=battle,
        index=index,
        prompt=prompt,
        language=detect_language(prompt) if language is None else language,
        has_code=looks_like_code(prompt),
        prompt_chars=len(prompt),
    )
    responses = Response.objects.bulk_create(
        [Response(turn=turn, side="a"), Response(turn=turn, side="b")]
    )
    for response in responses:
        enqueue("arena.generate_response", response.pk, response.attempt)
    return turn


def _retag(battle: Battle) -> None:
    turns = list(battle.turns.order_by("index").values_list("prompt", "language", "has_code"))
    battle.language = turns[0][1] if turns else ""
    battle.categories = battle_categories(
        prompts=[t[0] for t in turns],
        language=battle.language,
        has_code=any(t[2] for t in turns),
        turns=len(turns),
    )
    battle.save(update_fields=["language", "categories", "updated"])


def battle_start(
    *,
    voter: str,
    ip: str = "",
    prompt: object,
    mode: str = Battle.Mode.ANONYMOUS,
    model_a: str | None = None,
    model_b: str | None = None,
) -> Battle:
    """Start a battle with its first turn; the two generations start after commit."""
    text = _clean_prompt(prompt)
    limits.check(
        limits.Limit("battle", voter, settings.ARENA_BATTLES_PER_MINUTE),
        limits.Limit("battle-ip", ip_key(ip), settings.ARENA_BATTLES_PER_MINUTE_PER_IP),
    )
    moderation.moderate(text)
    if mode == Battle.Mode.NAMED:
        if not model_a or not model_b or model_a == model_b:
            raise ApplicationError("Pick two different models.", code="invalid_models")
        found = {m.slug: m for m in LLM.objects.for_arena().filter(slug__in=[model_a, model_b])}
        if len(found) != 2:
            raise ApplicationError("One of those models is not available.", code="invalid_models")
        a, b = found[model_a], found[model_b]
    elif mode == Battle.Mode.ANONYMOUS:
        a, b = sampling.pick_pair()
    else:
        raise ApplicationError("Unknown mode.", code="invalid_mode")
    language = detect_language(text)
    with transaction.atomic():
        battle = Battle.objects.create(
            mode=mode,
            model_a=a,
            model_b=b,
            voter=voter,
            ip_hash=ip_key(ip),
            language=language,
            categories=battle_categories(
                prompts=[text], language=language, has_code=looks_like_code(text), turns=1
            ),
        )
        _new_turn(battle, 0, text, language=language)
    BATTLES_STARTED.labels(mode=mode).inc()
    return battle


def battle_for_voter(*, public_id: object, voter: str, lock: bool = False) -> Battle:
    """The battle if ``voter`` owns it. Outsiders get NotFound, never a hint that it exists."""
    qs = Battle.objects.select_related("model_a", "model_b")
    if lock:
        qs = qs.select_for_update(of=("self",))
    battle = qs.filter(public_id=parse_public_id(public_id, "battle")).first()
    if battle is None or not hmac.compare_digest(battle.voter, voter):
        raise NotFound("No such battle.")
    return battle


def parse_public_id(value: object, what: str) -> uuid.UUID:
    """A public UUID from a URL or form; NotFound (never a 500) for anything else."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"No such {what}.") from None


def _last_turn(battle: Battle) -> Turn:
    return battle.turns.order_by("-index").first()  # type: ignore[return-value]


def turn_add(*, battle_id: object, voter: str, prompt: object) -> Turn:
    """Continue the conversation with both models."""
    text = _clean_prompt(prompt)
    limits.check(limits.Limit("battle", voter, settings.ARENA_BATTLES_PER_MINUTE))
    moderation.moderate(text)
    with transaction.atomic():
        battle = battle_for_voter(public_id=battle_id, voter=voter, lock=True)
        if battle.state == Battle.State.VOTED:
            raise Conflict("This round is over; start a new round.", code="battle_closed")
        last = _last_turn(battle)
        if last.index + 1 >= settings.ARENA_MAX_TURNS:
            raise Conflict(
                f"A battle has at most {settings.ARENA_MAX_TURNS} turns; vote now or start a new round.",
                code="too_many_turns",
            )
        if last.responses.exclude(state=Response.State.DONE).exists():
            raise Conflict("Wait until both answers are complete.", code="responses_pending")
        turn = _new_turn(battle, last.index + 1, text)
        _retag(battle)
    return turn


def _response_for_voter(
    *, battle_id: object, voter: str, response_id: object
) -> tuple[Battle, Response]:
    battle = battle_for_voter(public_id=battle_id, voter=voter, lock=True)
    response = (
        Response.objects.select_for_update()
        .select_related("turn")
        .filter(public_id=parse_public_id(response_id, "response"), turn__battle=battle)
        .first()
    )
    if response is None:
        raise NotFound("No such response.")
    return battle, response


def response_regenerate(*, battle_id: object, voter: str, response_id: object) -> Response:
    """Redo a failed or stopped answer of the last turn with the same model (a new attempt):
    the old attempt's task, if it still runs, can no longer save anything."""
    with transaction.atomic():
        battle, response = _response_for_voter(
            battle_id=battle_id, voter=voter, response_id=response_id
        )
        if battle.state == Battle.State.VOTED:
            raise Conflict("This round is over.", code="battle_closed")
        if response.turn_id != _last_turn(battle).pk:
            raise Conflict("Only the latest answers can be regenerated.", code="not_last_turn")
        if response.state not in (Response.State.FAILED, Response.State.STOPPED):
            raise Conflict("Only a failed or stopped answer can be regenerated.", code="not_failed")
        response.attempt += 1
        response.state = Response.State.PENDING
        response.text = ""
        response.error_kind = response.error_message = response.finish_reason = ""
        response.completed_at = None
        response.provider_attempts = 0
        response.queued_at = timezone.now()
        response.save(
            update_fields=[
                "attempt",
                "state",
                "text",
                "error_kind",
                "error_message",
                "finish_reason",
                "completed_at",
                "provider_attempts",
                "queued_at",
            ]
        )
        enqueue("arena.generate_response", response.pk, response.attempt)
    return response


def response_stop(*, battle_id: object, voter: str, response_id: object) -> Response:
    """Stop an answer; it keeps the text so far and ends as "stopped".

    A running generation is asked to stop (a flag its stream reads twice a second) and its
    worker saves it and pushes the pane. An answer no worker is generating (not started yet,
    or its worker is gone: no live lease) is stopped here at once and its pane pushed after
    commit; a task that comes later finds it finished and does nothing."""
    with transaction.atomic():
        battle, response = _response_for_voter(
            battle_id=battle_id, voter=voter, response_id=response_id
        )
        if response.is_finished:
            return response
        streaming.request_stop(str(response.public_id), response.attempt)
        if recovery.response_stop_now(battle=battle, response=response):
            transaction.on_commit(lambda: recovery.push_panes([str(battle.public_id)]))
            response.refresh_from_db()
    return response


VOTABLE = (Response.State.DONE, Response.State.STOPPED)
_CATEGORIES = Battle._meta.get_field("categories")
_PUBLIC_ID = Battle._meta.get_field("public_id")


class _VoteResponse(NamedTuple):
    """What a vote needs of each response (read as plain tuples: the hot path)."""

    side: str
    state: str
    attempt: int
    leaks_identity: bool
    turn_index: int
    length: int
    header_count: int
    list_count: int
    bold_count: int


def _vote_read_sql() -> str:
    """The battle (locked), its vote's id if any, and one row per response, in one statement."""
    battle, vote = Battle._meta.db_table, Vote._meta.db_table
    turn, response = Turn._meta.db_table, Response._meta.db_table
    style = ", ".join(f"r.{name}" for name in Vote.STYLE_FIELDS)
    lock = " FOR UPDATE OF b" if connection.features.has_select_for_update_of else ""
    return (
        f"SELECT b.id, b.voter, b.mode, b.model_a_id, b.model_b_id, b.categories, v.id,"
        f" r.side, r.state, r.attempt, r.leaks_identity, t.{connection.ops.quote_name('index')},"
        f" {style}"
        f" FROM {battle} b LEFT JOIN {vote} v ON v.battle_id = b.id"
        f" LEFT JOIN {turn} t ON t.battle_id = b.id LEFT JOIN {response} r ON r.turn_id = t.id"
        f" WHERE b.public_id = %s{lock}"
    )


def _vote_write(vote: Vote) -> None:
    """Insert ``vote``, mark its battle voted and count it.

    On PostgreSQL this is one statement (data-modifying CTEs): the vote is the hot path of the
    arena and each round trip and ORM query costs more than the writes themselves. Elsewhere the
    same three writes go through the ORM."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        vote.save(force_insert=True)
        Battle.objects.filter(pk=vote.battle_id).update(state=Battle.State.VOTED, updated=now)
        counts_add_vote(vote)
        return
    qn = connection.ops.quote_name
    fields = [f for f in Vote._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(vote, True), connection) for f in fields]
    sql = (
        f"WITH ins AS (INSERT INTO {Vote._meta.db_table} ({', '.join(qn(f.column) for f in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id),"
        f" upd AS (UPDATE {Battle._meta.db_table} SET state = %s, updated = %s WHERE id = %s)"
    )
    params: list[object] = [*values, Battle.State.VOTED, now, vote.battle_id]
    counted = counts_add_vote_sql(vote)
    if counted is not None:
        sql += f", counted AS ({counted[0]})"
        params += counted[1]
    with connection.cursor() as cursor:
        cursor.execute(sql + " SELECT id FROM ins", params)
        vote.pk = cursor.fetchone()[0]
    vote._state.adding = False


def vote_cast(*, battle_id: object, voter: str, winner: object, ip: str = "") -> tuple[Vote, bool]:
    """Record the one vote of a battle; returns (vote, created).

    A replayed or concurrent second vote gets the recorded vote back (created=False), never a
    second row: the battle row is locked (with its vote, if any, and its responses read in the
    same statement), and the one-to-one constraint is the last line. On PostgreSQL the hot path
    is four round trips: BEGIN, the locked read, one write statement, COMMIT.
    """
    if winner not in Vote.Winner.values:
        raise ApplicationError("Vote A, B, tie or both bad.", code="invalid_winner")
    public_id = parse_public_id(battle_id, "battle")
    flags: list[str] = []
    try:
        with transaction.atomic():
            # Lock the battle row: two concurrent votes on one battle serialise here, and the
            # second one finds the first one's vote instead of inserting a row of its own.
            with connection.cursor() as cursor:
                cursor.execute(
                    _vote_read_sql(), [_PUBLIC_ID.get_db_prep_value(public_id, connection)]
                )
                rows = cursor.fetchall()
            if not rows or not hmac.compare_digest(rows[0][1], voter):
                raise NotFound("No such battle.")
            pk, _, mode, model_a_id, model_b_id, categories, existing = rows[0][:7]
            if existing is not None:
                return Vote.objects.get(pk=existing), False
            limits.check(
                limits.Limit("vote", voter, settings.ARENA_VOTES_PER_MINUTE),
                limits.Limit("vote-ip", ip_key(ip), settings.ARENA_VOTES_PER_MINUTE_PER_IP),
            )
            responses = [_VoteResponse(*row[7:]) for row in rows if row[7] is not None]
            if not responses:
                raise Conflict("Vote when both answers are complete.", code="responses_pending")
            last_index = max(r.turn_index for r in responses)
            last = [r for r in responses if r.turn_index == last_index]
            if any(r.state not in VOTABLE for r in last):
                raise Conflict("Vote when both answers are complete.", code="responses_pending")
            if any(r.leaks_identity for r in responses):
                flags.append(Vote.Flag.IDENTITY_LEAK)
            if any(r.attempt > 1 or r.state == Response.State.FAILED for r in responses):
                flags.append(Vote.Flag.ERRORED_ROUND)
            battle = Battle(
                pk=pk, public_id=public_id, mode=mode, model_a_id=model_a_id,
                model_b_id=model_b_id, voter=voter,
                categories=_CATEGORIES.from_db_value(categories, None, connection),
            )  # fmt: skip
            battle._state.adding = False
            vote = Vote(
                battle=battle, winner=winner, voter=voter, turns=last_index + 1, flags=flags
            )
            vote.set_style_from(responses)
            _vote_write(vote)
    except IntegrityError:
        # Lost a race that the row lock did not cover (e.g. SQLite): the winner's vote stands.
        return Vote.objects.get(battle__public_id=public_id), False
    VOTES_CAST.labels(winner=winner, flagged=str(bool(flags)).lower()).inc()
    return vote, True
