"""Arena write operations: start a battle, add a turn, regenerate or stop a response, vote.

Every function owns its transaction; generation is enqueued after commit; moderation (a network
call) runs before any transaction opens. Errors are ``ApplicationError`` subclasses with a
stable ``code`` that HTML views, the API and consumers map to responses.

When a dependency is down (the directions are chosen here): starting a battle or a turn needs
Redis (rate limits, broker, channel layer) and fails closed with ``ArenaUnavailable`` (503),
creating nothing; if the broker refuses the generations after the rows were committed, the rows
are deleted again (a battle whose answers can never be generated must not exist). Voting needs
only the database: its rate limit fails open, so a vote is never lost to a Redis outage.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from arena import limits, moderation, recovery, sampling, streaming
from arena.limits import ArenaUnavailable
from arena.metrics import BATTLES_STARTED, VOTES_CAST
from arena.models import LLM, Battle, PairSamplingWeight, Provider, Response, Turn, Vote
from arena.text import battle_categories, detect_language, looks_like_code
from arena.vote_sql import VoteResponse, vote_read_sql, vote_write
from core.background import enqueue
from core.errors import ApplicationError, Conflict, NotFound

__all__ = ["ArenaUnavailable"]  # re-exported: the error views and tests name from here

log = logging.getLogger(__name__)
BROKER_DOWN = (BrokerError, *limits.REDIS_DOWN)


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


def _new_turn(
    battle: Battle, index: int, prompt: str, *, language: str | None = None
) -> tuple[Turn, list[Response]]:
    """The turn and its two pending responses; the caller queues them with ``_generate``."""
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
    return turn, responses


def _generate(responses: list[Response], *, undo: Callable[[], None]) -> None:
    """Queue one generation per response, after the caller's transaction has committed.

    If a hand-over fails, ``undo`` deletes what the caller created (nothing has used it yet: its
    answers are pending and a pending battle takes no vote) and the voter gets ArenaUnavailable
    when the broker is down; a task that was queued before the failure finds its row gone and
    does nothing. Call it outside any transaction: inside one the tasks wait for the outer
    commit, and a failure there raises without being undone."""
    try:
        for response in responses:
            enqueue("arena.generate_response", response.pk, response.attempt, robust=False)
    except Exception as exc:
        log.warning(
            "generation could not be queued; undoing the new turn",
            extra={"error": type(exc).__name__},
        )
        undo()
        if isinstance(exc, BROKER_DOWN):
            raise ArenaUnavailable() from exc
        raise


def _battle_undo(battle_pk: int) -> None:
    with transaction.atomic():
        Battle.objects.filter(pk=battle_pk, vote__isnull=True).delete()


def _turn_undo(battle_pk: int, turn_pk: int) -> None:
    with transaction.atomic():
        battle = Battle.objects.select_for_update().get(pk=battle_pk)
        Turn.objects.filter(pk=turn_pk, battle=battle).delete()
        _retag(battle)


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
    """Start a battle with its first turn; the two generations start after commit.

    Raises ArenaUnavailable, leaving no row behind, when Redis or the broker is down."""
    text = _clean_prompt(prompt)
    limits.check(
        limits.Limit("battle", voter, settings.ARENA_BATTLES_PER_MINUTE),
        limits.Limit("battle-ip", ip_key(ip), settings.ARENA_BATTLES_PER_MINUTE_PER_IP),
        fail_open=False,  # the battle could not be generated or streamed without Redis
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
        _, responses = _new_turn(battle, 0, text, language=language)
    _generate(responses, undo=lambda: _battle_undo(battle.pk))
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
    """Continue the conversation with both models.

    Raises ArenaUnavailable, leaving the battle as it was, when Redis or the broker is down."""
    text = _clean_prompt(prompt)
    limits.check(
        limits.Limit("battle", voter, settings.ARENA_BATTLES_PER_MINUTE),
        fail_open=False,  # as for a new battle: the turn could not be generated without Redis
    )
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
        turn, responses = _new_turn(battle, last.index + 1, text)
        _retag(battle)
    _generate(responses, undo=lambda: _turn_undo(battle.pk, turn.pk))
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
                    vote_read_sql(), [_PUBLIC_ID.get_db_prep_value(public_id, connection)]
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
                fail_open=True,  # the vote needs only the database; never lose it to Redis
            )
            responses = [VoteResponse(*row[7:]) for row in rows if row[7] is not None]
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
            vote_write(vote)
    except IntegrityError:
        # Lost a race that the row lock did not cover (e.g. SQLite): the winner's vote stands.
        return Vote.objects.get(battle__public_id=public_id), False
    VOTES_CAST.labels(winner=winner, flagged=str(bool(flags)).lower()).inc()
    return vote, True


# --- writes the rating app computes: vote flags, sampling weights, imported battles ------------


def votes_flag(*, vote_ids: list[int], flag: str) -> int:
    """Add ``flag`` to the flags of the given votes; returns how many votes gained it.

    Idempotent: a vote that already has the flag is left untouched and not counted. Flags are
    only added here (an operator removes them in the admin). The vote counts are not changed:
    ``arena.counts.counts_rebuild`` applies flags set after a vote was counted. On PostgreSQL
    this is one UPDATE whose jsonb containment test skips votes that have the flag; elsewhere
    locked chunks of votes go through the ORM.
    """
    if flag not in Vote.Flag.values:
        raise ApplicationError(f"Unknown vote flag {flag!r}.", code="invalid_flag")
    ids = [int(i) for i in vote_ids]
    if not ids:
        return 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Vote._meta.db_table}"
                    " SET flags = COALESCE(flags, '[]'::jsonb) || jsonb_build_array(%s::text)"
                    " WHERE id = ANY(%s)"
                    " AND NOT COALESCE(flags, '[]'::jsonb) @> jsonb_build_array(%s::text)",
                    [flag, ids, flag],
                )
                return cursor.rowcount
        changed = 0
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = Vote.objects.select_for_update().filter(pk__in=ids[start : start + 900])
            todo = [v for v in chunk.only("id", "flags") if flag not in (v.flags or [])]
            for vote in todo:
                vote.flags = [*(vote.flags or []), flag]
            Vote.objects.bulk_update(todo, ["flags"], batch_size=1000)
            changed += len(todo)
    return changed


def sampling_weights_replace(*, weights: list[tuple[int, int, float]]) -> int:
    """Replace every ``PairSamplingWeight`` with ``weights`` (model_a pk, model_b pk, weight).

    One transaction: ``arena.sampling`` sees the old table or the new one, never a mix.
    Returns the number of rows written.
    """
    now = timezone.now()
    with transaction.atomic():
        PairSamplingWeight.objects.all().delete()
        if connection.vendor == "postgresql":  # one COPY instead of ~5,000 model instances
            columns = "(model_a_id, model_b_id, weight, updated)"
            connection.ensure_connection()
            with (
                connection.connection.cursor() as cursor,
                cursor.copy(f"COPY {PairSamplingWeight._meta.db_table} {columns} FROM STDIN")
                as copy,
            ):  # fmt: skip
                for a, b, weight in weights:
                    copy.write_row((a, b, weight, now))
        else:
            PairSamplingWeight.objects.bulk_create(
                [PairSamplingWeight(model_a_id=a, model_b_id=b, weight=w, updated=now)
                 for a, b, w in weights],
                batch_size=1000,
            )  # fmt: skip
    return len(weights)


class ImportedBattle(NamedTuple):
    """A voted battle read from a battle file, as unsaved rows linked in memory."""

    battle: Battle
    turns: list[Turn]
    responses: list[Response]
    vote: Vote


def battles_import_create(*, battles: list[ImportedBattle]) -> int:
    """Store imported battles whose ``public_id`` is new, in one transaction; returns how many.

    Bulk inserts bypass the per-vote count increments: the caller rebuilds the counts after.
    """
    ids = [b.battle.public_id for b in battles]
    with transaction.atomic():
        known = set(Battle.objects.filter(public_id__in=ids).values_list("public_id", flat=True))
        todo = [b for b in battles if b.battle.public_id not in known]
        Battle.objects.bulk_create([b.battle for b in todo], batch_size=2000)
        Turn.objects.bulk_create([t for b in todo for t in b.turns], batch_size=2000)
        Response.objects.bulk_create([r for b in todo for r in b.responses], batch_size=2000)
        Vote.objects.bulk_create([b.vote for b in todo], batch_size=2000)
    return len(todo)


def llms_create_imported(*, names: dict[str, str]) -> tuple[dict[str, LLM], int]:
    """The LLM of each slug in ``names`` (slug -> name in the file) and how many were created:
    missing ones are created inactive, outside the arena and annotation, under the provider
    "imported"."""
    found = {m.slug: m for m in LLM.objects.filter(slug__in=list(names))}
    missing = [slug for slug in names if slug not in found]
    if missing:
        provider, _ = Provider.objects.get_or_create(
            name="imported", defaults={"kind": Provider.Kind.DEMO}
        )
        LLM.objects.bulk_create(
            [
                LLM(
                    slug=slug, display_name=names[slug][:200], provider=provider,
                    provider_model_id=names[slug][:200], active=False, use_in_arena=False,
                    use_in_annotation=False,
                )
                for slug in missing
            ],
            ignore_conflicts=True,
        )  # fmt: skip
        found.update({m.slug: m for m in LLM.objects.filter(slug__in=missing)})
    return found, len(missing)
