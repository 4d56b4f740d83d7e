"""Import Chatbot Arena battle files (JSON, JSONL, Parquet) as battles, turns, responses, votes.

Idempotent: every battle gets a deterministic ``public_id`` (uuid5) from the row's identity
(``question_id``, models, judge and timestamp when the file has a question_id; otherwise the
row's content and its occurrence number among identical rows), so importing a file twice adds
nothing the second time. Unknown models become inactive LLMs under the provider "imported".
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.text import slugify

from arena.models import LLM, Battle, Response, Turn, Vote
from arena.selectors import battles_known
from arena.services import ImportedBattle, battles_import_create, llms_create_imported
from arena.text import battle_categories, looks_like_code, style_features
from rating.engine.data import OUTCOME_LABELS, InvalidVoteError, Outcome, UnknownOutcomeError
from rating.engine.io import read_records
from rating.selectors import LANGUAGE_NAMES, arena_vote_arrays
from rating.services import counts_rebuild_from

NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-4f5e-9c7d-1a2b3c4d5e6f")
WINNERS = {Outcome.A: "a", Outcome.B: "b", Outcome.TIE: "tie", Outcome.BOTH_BAD: "both_bad"}
LANGUAGE_CODES = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}
CHUNK = 2000
_STYLE_META = ("sum_assistant_{}_tokens", "header_count_{}", "list_count_{}", "bold_count_{}")


def _key(rec: dict[str, Any], seen: Counter[str]) -> uuid.UUID:
    if rec.get("question_id"):
        ident = [rec.get(k) for k in ("question_id", "model_a", "model_b", "judge", "tstamp")]
        text = json.dumps(ident, default=str)
    else:
        text = json.dumps(rec, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    seen[digest] += 1
    return uuid.uuid5(NAMESPACE, f"{digest}:{seen[digest]}")


def _winner(rec: dict[str, Any], row: int) -> str:
    label = str(rec.get("winner", "")).strip().lower()
    if label not in OUTCOME_LABELS:
        raise UnknownOutcomeError(row, rec.get("winner"))
    return WINNERS[OUTCOME_LABELS[label]]


def _language(value: Any) -> str:
    if not value:
        return ""
    text = str(value).strip().lower()
    return LANGUAGE_CODES.get(text, text[:16])


def _turns(rec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(prompt, answer_a, answer_b) per turn from conversation_a/b, or one empty turn."""
    conv_a, conv_b = rec.get("conversation_a"), rec.get("conversation_b")
    if not isinstance(conv_a, list) or not isinstance(conv_b, list):
        return [("", "", "")]

    def pairs(conv: list[Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for msg in conv:
            if not isinstance(msg, dict):
                continue
            role, content = msg.get("role"), str(msg.get("content") or "")
            if role == "user":
                out.append((content, ""))
            elif role == "assistant" and out:
                out[-1] = (out[-1][0], content)
        return out

    pa, pb = pairs(conv_a), pairs(conv_b)
    n = max(len(pa), len(pb), 1)
    pa += [("", "")] * (n - len(pa))
    pb += [("", "")] * (n - len(pb))
    return [(pa[k][0] or pb[k][0], pa[k][1], pb[k][1]) for k in range(n)]


def _meta_features(rec: dict[str, Any], side: str) -> tuple[int, int, int, int] | None:
    meta = rec.get("conv_metadata") if isinstance(rec.get("conv_metadata"), dict) else None
    if meta is None or not all(k.format(side) in meta for k in _STYLE_META):
        return None

    def total(v: Any) -> int:
        if isinstance(v, dict):
            return sum(total(x) for x in v.values())
        return int(v or 0)

    return tuple(total(meta[k.format(side)]) for k in _STYLE_META)  # type: ignore[return-value]


def _models(names: set[str]) -> tuple[dict[str, LLM], int]:
    """LLM per battle-file name (existing models by slug, new ones inactive under "imported")
    and how many were created."""
    by_slug = {slugify(n)[:100] or "model": n for n in names}
    found, created = llms_create_imported(names=by_slug)
    return {name: found[slug] for slug, name in by_slug.items()}, created


def battles_import(*, path: str | Path) -> dict[str, int]:
    """Import a battle file; returns counts of rows, battles created, skipped, models created.

    Raises ``rating.engine.RatingError`` naming the first malformed row before writing anything.
    The vote counts are rebuilt afterwards (bulk inserts bypass the per-vote increments).
    """
    records = read_records(path)
    seen: Counter[str] = Counter()
    rows = []
    for r, rec in enumerate(records):
        missing = [k for k in ("model_a", "model_b", "winner") if rec.get(k) in (None, "")]
        if missing:
            raise InvalidVoteError(f"row {r}: missing {', '.join(missing)}")
        if str(rec["model_a"]) == str(rec["model_b"]):
            raise InvalidVoteError(f"row {r}: a model against itself ({rec['model_a']})")
        rows.append((_key(rec, seen), _winner(rec, r), rec))
    llms, models_created = _models(
        {str(rec[k]) for _, _, rec in rows for k in ("model_a", "model_b")}
    )
    created = skipped = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        known = battles_known(public_ids=[key for key, _, _ in chunk])
        todo = [_imported(key, winner, rec, llms) for key, winner, rec in chunk if key not in known]
        done = battles_import_create(battles=todo) if todo else 0
        created += done
        skipped += len(chunk) - done
    drift, _ = counts_rebuild_from(arena_vote_arrays())
    return {
        "rows": len(rows),
        "created": created,
        "skipped": skipped,
        "models_created": models_created,
        "votes_counted": drift["votes"],
    }


def _imported(
    key: uuid.UUID, winner: str, rec: dict[str, Any], llms: dict[str, LLM]
) -> ImportedBattle:
    """One file row as unsaved arena rows: battle, turns, both responses per turn, the vote."""
    turns = _turns(rec)
    prompts = [t[0] for t in turns]
    language = _language(rec.get("language"))
    ts = rec.get("tstamp")
    created = (
        datetime.fromtimestamp(float(ts), tz=UTC) if isinstance(ts, int | float) else timezone.now()
    )
    battle = Battle(
        public_id=key,
        mode=Battle.Mode.NAMED if rec.get("anony") is False else Battle.Mode.ANONYMOUS,
        model_a=llms[str(rec["model_a"])],
        model_b=llms[str(rec["model_b"])],
        voter=str(rec.get("judge") or "imported")[:64],
        state=Battle.State.VOTED,
        categories=battle_categories(
            prompts=prompts, language=language,
            has_code=any(looks_like_code(p) for p in prompts), turns=len(turns),
        ),
        language=language,
        created=created,
    )  # fmt: skip
    turn_rows = [
        Turn(
            battle=battle, index=k, prompt=prompt, language=language,
            has_code=looks_like_code(prompt), prompt_chars=len(prompt), created=created,
        )
        for k, prompt in enumerate(prompts)
    ]  # fmt: skip
    responses = [
        _response(turn, side, text, rec, first_turn=k == 0)
        for k, (turn, (_, text_a, text_b)) in enumerate(zip(turn_rows, turns, strict=True))
        for side, text in (("a", text_a), ("b", text_b))
    ]
    vote = Vote(battle=battle, winner=winner, voter=battle.voter, turns=len(turns), created=created)
    # The per-side conversation totals style control reads (conv_metadata when the file has
    # it, else computed from the text), as arena.services.vote_cast does.
    vote.set_style_from(responses)
    return ImportedBattle(battle, turn_rows, responses, vote)


def _response(
    turn: Turn, side: str, text: str, rec: dict[str, Any], *, first_turn: bool
) -> Response:
    """A finished response with its style counts (length, headers, lists, bold)."""
    meta = _meta_features(rec, side)
    if meta is not None:
        # conv_metadata holds whole-conversation totals: put them on turn 0.
        feats = meta if first_turn else (0, 0, 0, 0)
    else:
        found = style_features(text)
        feats = (found.length, found.header_count, found.list_count, found.bold_count)
    return Response(
        turn=turn, side=side, text=text, state=Response.State.DONE, length=feats[0],
        header_count=feats[1], list_count=feats[2], bold_count=feats[3],
        created=turn.created, completed_at=turn.created,
    )  # fmt: skip
