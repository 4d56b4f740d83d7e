"""Every human judgment read as preference pairs: one stream, no copy table.

``iter_pairs(filters)`` yields :class:`Pair` objects from arena votes (one pair per voted battle,
every turn kept) followed by annotation rankings (each ranking broken into its K(K-1)/2 pairs,
ties kept as ties). Rows come from a server-side cursor (``.iterator(chunk_size=...)``), so memory
stays constant however many votes there are. Every export and the pairs API read this one
definition; the order is fixed (arena by vote id, then rankings by id and pair index), which is
what makes releases reproducible.

Rankings come from ``annotations.selectors.accepted_rankings`` when the annotations app provides
it (:func:`ranking_source`); until then the stream has arena votes only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from django.db import connection
from django.db.models import FilteredRelation, Max, Q, QuerySet

from arena.models import LLM, Battle, Turn, Vote

SOURCE_ARENA = "arena"
SOURCE_ANNOTATION = "annotation"
SOURCE_CONSENSUS = "consensus"
SOURCES = (SOURCE_ARENA, SOURCE_ANNOTATION, SOURCE_CONSENSUS)

OUTCOME_A = "a"
OUTCOME_B = "b"
OUTCOME_TIE = "tie"
OUTCOME_BOTH_BAD = "both_bad"
OUTCOMES = (OUTCOME_A, OUTCOME_B, OUTCOME_TIE, OUTCOME_BOTH_BAD)

DEFAULT_CHUNK = 2000


@dataclass(frozen=True)
class PairFilters:
    """What a caller may ask for. Empty collections mean "no restriction".

    ``min_agreement`` / ``min_trust`` apply to annotation pairs only: an arena vote carries
    neither and is not affected. ``max_vote_id`` / ``max_annotation_id`` cut a snapshot.
    """

    date_from: datetime | None = None
    date_to: datetime | None = None
    sources: tuple[str, ...] = (SOURCE_ARENA, SOURCE_ANNOTATION)
    models: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    language: str = ""
    min_agreement: float | None = None
    min_trust: float | None = None
    include_ties: bool = False
    include_both_bad: bool = False
    include_flagged: bool = False
    max_vote_id: int | None = None
    max_annotation_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "sources": list(self.sources),
            "models": list(self.models),
            "categories": list(self.categories),
            "language": self.language,
            "min_agreement": self.min_agreement,
            "min_trust": self.min_trust,
            "include_ties": self.include_ties,
            "include_both_bad": self.include_both_bad,
            "include_flagged": self.include_flagged,
        }

    @classmethod
    def from_json(
        cls,
        data: dict[str, Any],
        *,
        max_vote_id: int | None = None,
        max_annotation_id: int | None = None,
    ) -> PairFilters:
        def when(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            date_from=when(data.get("date_from")),
            date_to=when(data.get("date_to")),
            sources=tuple(data.get("sources") or (SOURCE_ARENA, SOURCE_ANNOTATION)),
            models=tuple(data.get("models") or ()),
            categories=tuple(data.get("categories") or ()),
            language=data.get("language") or "",
            min_agreement=data.get("min_agreement"),
            min_trust=data.get("min_trust"),
            include_ties=bool(data.get("include_ties")),
            include_both_bad=bool(data.get("include_both_bad")),
            include_flagged=bool(data.get("include_flagged")),
            max_vote_id=max_vote_id,
            max_annotation_id=max_annotation_id,
        )


@dataclass(slots=True)
class Pair:
    """One preference judgment between two responses to the same prompt.

    ``prompts[i]`` is the user's turn i; ``response_a[i]`` / ``response_b[i]`` the two answers to
    it. ``outcome`` is from side a's point of view (``a`` means a was preferred).
    """

    id: str
    source: str
    source_pk: int
    sub_index: int
    prompts: list[str]
    response_a: list[str]
    response_b: list[str]
    model_a: str
    model_b: str
    outcome: str
    margin: float
    weight: float
    judge: str
    categories: list[str]
    language: str
    created: datetime
    agreement: float | None = None
    trust: float | None = None
    flags: list[str] = field(default_factory=list)
    labels_a: dict[str, Any] = field(default_factory=dict)
    labels_b: dict[str, Any] = field(default_factory=dict)

    @property
    def is_decisive(self) -> bool:
        return self.outcome in (OUTCOME_A, OUTCOME_B)

    def oriented(self) -> tuple[list[str], list[str], str, str]:
        """(chosen, rejected, chosen model, rejected model); for a tie side a comes first."""
        if self.outcome == OUTCOME_B:
            return self.response_b, self.response_a, self.model_b, self.model_a
        return self.response_a, self.response_b, self.model_a, self.model_b


@dataclass(frozen=True)
class RankedResponse:
    text: str
    model: str
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ranking:
    """One annotator's ranking of K responses to one prompt.

    ``ranks[i]`` is the rank of ``responses[i]`` (1 = best); equal ranks are ties.
    """

    pk: int
    prompts: list[str]
    responses: list[RankedResponse]
    ranks: list[int]
    judge: str
    created: datetime
    trust: float | None = None
    agreement: float | None = None
    categories: list[str] = field(default_factory=list)
    language: str = ""
    source: str = SOURCE_ANNOTATION
    flags: list[str] = field(default_factory=list)
    shared_answers: list[str] = field(default_factory=list)  # earlier assistant turns
    public_id: str = ""  # stable id for exports (an arena battle's UUID); default source:pk

    def answers(self, response: RankedResponse) -> list[str]:
        return [*self.shared_answers, response.text]


# --- ranking expansion -----------------------------------------------------------------------


def expand_ranking(ranking: Ranking, *, weighted: bool = True) -> Iterator[Pair]:
    """Full rank-breaking: every one of the K(K-1)/2 pairs, ties kept as ties.

    Pairs keep the item's response order (i < j), so a tie's orientation is deterministic;
    ``margin`` is the rank distance and ``weight`` 1/(K-1) when ``weighted`` (pairs from one
    ranking are dependent, so K-1 pairs' worth of evidence is spread over all of them).
    """
    k = len(ranking.responses)
    if k < 2 or len(ranking.ranks) != k:
        return
    weight = 1.0 / (k - 1) if weighted else 1.0
    index = 0
    for i in range(k):
        for j in range(i + 1, k):
            a, b = ranking.responses[i], ranking.responses[j]
            ra, rb = ranking.ranks[i], ranking.ranks[j]
            outcome = OUTCOME_A if ra < rb else OUTCOME_B if rb < ra else OUTCOME_TIE
            yield Pair(
                id=f"{ranking.source}:{ranking.pk}:{i}-{j}",
                source=ranking.source,
                source_pk=ranking.pk,
                sub_index=index,
                prompts=list(ranking.prompts),
                response_a=ranking.answers(a),
                response_b=ranking.answers(b),
                model_a=a.model,
                model_b=b.model,
                outcome=outcome,
                margin=float(abs(ra - rb)),
                weight=weight,
                judge=ranking.judge,
                categories=list(ranking.categories),
                language=ranking.language,
                created=ranking.created,
                agreement=ranking.agreement,
                trust=ranking.trust,
                flags=list(ranking.flags),
                labels_a=dict(a.labels),
                labels_b=dict(b.labels),
            )
            index += 1


# --- annotation seam -----------------------------------------------------------------------------


def ranking_source() -> Callable[..., Iterable[Any]] | None:
    """``annotations.selectors.accepted_rankings`` once the annotations app provides it."""
    try:
        from annotations import selectors as annotation_selectors
    except ImportError:
        return None
    return getattr(annotation_selectors, "accepted_rankings", None)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def ranking_from_annotation(raw: Any) -> Ranking:
    """Adapt one row of ``accepted_rankings`` (a dict, see its docstring) to our :class:`Ranking`.

    Earlier turns of the item's ``conversation`` become shared leading turns: both sides carry
    the same earlier assistant messages, then their own reply to ``prompt``.
    """
    if isinstance(raw, Ranking):
        return raw
    history = list(_get(raw, "conversation", []) or [])
    prompts: list[str] = []
    shared: list[str] = []
    for message in history:
        if _get(message, "role") == "user":
            prompts.append(str(_get(message, "content", "")))
            shared.append("")
        elif shared:
            shared[-1] = str(_get(message, "content", ""))
    prompts.append(str(_get(raw, "prompt", "")))
    labels_by_index = {str(k): v for k, v in (_get(raw, "labels", {}) or {}).items()}
    responses = []
    for position, r in enumerate(_get(raw, "responses", [])):
        index = _get(r, "index", position)
        responses.append(
            RankedResponse(
                text=str(_get(r, "text", "")),
                model=str(_get(r, "llm_slug") or _get(r, "source_model") or _get(r, "model") or ""),
                labels=dict(labels_by_index.get(str(index), {}) or _get(r, "labels", {}) or {}),
            )
        )
    ranks = _get(raw, "ranks", None)
    if ranks is None:  # groups of response indices, best first; a group of several is a tie
        position_of_index: dict[Any, int] = {
            _get(r, "index", i): i for i, r in enumerate(_get(raw, "responses", []))
        }
        ranks = [0] * len(responses)
        for rank, group in enumerate(_get(raw, "ranking", None) or [], start=1):
            for idx in group if isinstance(group, (list, tuple)) else [group]:
                ranks[position_of_index.get(idx, int(idx))] = rank
    return Ranking(
        pk=int(_get(raw, "annotation_id", None) or _get(raw, "pk", None) or _get(raw, "id", 0)),
        prompts=prompts,
        responses=responses,
        ranks=list(ranks),
        judge=str(_get(raw, "annotator", "") or _get(raw, "judge", "")),
        created=_get(raw, "created"),
        trust=_get(raw, "trust"),
        agreement=_get(raw, "agreement"),
        categories=list(_get(raw, "categories", []) or []),
        language=str(_get(raw, "language", "") or ""),
        source=str(_get(raw, "source", SOURCE_ANNOTATION) or SOURCE_ANNOTATION),
        flags=list(_get(raw, "flags", []) or []),
        shared_answers=shared,
    )


def iter_rankings(filters: PairFilters, *, after_pk: int = 0) -> Iterator[Ranking]:
    """Annotation rankings matching ``filters`` in id order (empty until annotations land)."""
    wanted = {s for s in filters.sources if s != SOURCE_ARENA}
    source = ranking_source()
    if source is None or not wanted:
        return
    for raw in source(max_id=filters.max_annotation_id):
        ranking = ranking_from_annotation(raw)
        if 0 in ranking.ranks:  # an incomplete ordering cannot be broken into pairs
            continue
        if ranking.pk <= after_pk or ranking.source not in wanted:
            continue
        if filters.max_annotation_id is not None and ranking.pk > filters.max_annotation_id:
            continue
        if not _ranking_matches(ranking, filters):
            continue
        yield ranking


def _ranking_matches(r: Ranking, f: PairFilters) -> bool:
    if f.date_from and r.created < f.date_from:
        return False
    if f.date_to and r.created >= f.date_to:
        return False
    if f.models and not any(resp.model in f.models for resp in r.responses):
        return False
    if f.categories and not set(f.categories) & set(r.categories):
        return False
    if f.language and r.language != f.language:
        return False
    if f.min_trust is not None and (r.trust is None or r.trust < f.min_trust):
        return False
    if f.min_agreement is not None and (r.agreement is None or r.agreement < f.min_agreement):
        return False
    return f.include_flagged or not r.flags


def _pair_allowed(pair: Pair, f: PairFilters) -> bool:
    if pair.outcome == OUTCOME_TIE:
        return f.include_ties
    if pair.outcome == OUTCOME_BOTH_BAD:
        return f.include_both_bad
    return True


# --- arena votes ---------------------------------------------------------------------------------


def _json_has_any(path: str, values: Iterable[str]) -> Q:
    """``path`` (a JSON list) contains one of ``values``; portable across PostgreSQL and SQLite."""
    q = Q()
    for value in values:
        if connection.vendor == "postgresql":
            q |= Q(**{f"{path}__contains": [value]})
        else:  # SQLite has no JSON containment lookup; match the encoded element
            q |= Q(**{f"{path}__icontains": json.dumps(value)})
    return q


def vote_queryset(filters: PairFilters) -> QuerySet[Vote]:
    """Votes matching ``filters`` (the filterable unit of the arena source)."""
    qs = Vote.objects.all()
    if filters.max_vote_id is not None:
        qs = qs.filter(id__lte=filters.max_vote_id)
    if filters.date_from:
        qs = qs.filter(created__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(created__lt=filters.date_to)
    if filters.models:
        qs = qs.filter(
            Q(battle__model_a__slug__in=filters.models)
            | Q(battle__model_b__slug__in=filters.models)
        )
    if filters.categories:
        qs = qs.filter(_json_has_any("battle__categories", filters.categories))
    if filters.language:
        qs = qs.filter(battle__language=filters.language)
    winners = [OUTCOME_A, OUTCOME_B]
    if filters.include_ties:
        winners.append(OUTCOME_TIE)
    if filters.include_both_bad:
        winners.append(OUTCOME_BOTH_BAD)
    qs = qs.filter(winner__in=winners)
    if not filters.include_flagged:
        qs = qs.filter(flags=[])
    return qs


ARENA_COLUMNS = (
    "battle__vote__id",
    "battle__public_id",
    "battle__model_a__slug",
    "battle__model_b__slug",
    "battle__vote__winner",
    "battle__vote__voter",
    "battle__vote__flags",
    "battle__categories",
    "battle__language",
    "battle__vote__created",
    "prompt",
    "ra__text",
    "rb__text",
)


def arena_turn_rows(
    filters: PairFilters, *, after_vote_id: int = 0, vote_limit: int | None = None
) -> QuerySet[Any]:
    """One row per (vote, turn): the turn's prompt and both sides' text, in (vote, turn) order.

    Two filtered LEFT JOINs on the responses (side a, side b) keep it one flat query;
    ``vote_limit`` bounds the number of votes (a page), never cutting one vote's turns.
    """
    votes = vote_queryset(filters)
    if after_vote_id:
        votes = votes.filter(id__gt=after_vote_id)
    if vote_limit is not None:
        votes = votes.order_by("id")[:vote_limit]
    return (
        Turn.objects.filter(battle__vote__in=votes.values("id"))
        .annotate(
            ra=FilteredRelation("responses", condition=Q(responses__side="a")),
            rb=FilteredRelation("responses", condition=Q(responses__side="b")),
        )
        .order_by("battle__vote__id", "index")
        .values_list(*ARENA_COLUMNS)
    )


_JSON_LISTS: dict[str, tuple[Any, ...]] = {}


def _json_list(value: Any) -> list[Any]:
    """A JSON list column as a list; the raw cursor gives jsonb as text (Django's loader).

    Flags and categories take few distinct values: each text is decoded once per process.
    """
    if isinstance(value, str):
        decoded = _JSON_LISTS.get(value)
        if decoded is None:
            decoded = tuple(json.loads(value) or ())
            if len(_JSON_LISTS) < 10_000:
                _JSON_LISTS[value] = decoded
        return list(decoded)
    return list(value or [])


def _pair_from_turn_rows(rows: list[tuple[Any, ...]]) -> Pair:
    first = rows[0]
    (vote_id, public_id, model_a, model_b, winner, voter, flags, cats, lang, created) = first[:10]
    return Pair(
        id=f"arena:{public_id}",
        source=SOURCE_ARENA,
        source_pk=vote_id,
        sub_index=0,
        prompts=[r[10] for r in rows],
        response_a=[r[11] or "" for r in rows],
        response_b=[r[12] or "" for r in rows],
        model_a=model_a,
        model_b=model_b,
        outcome=winner,
        margin=1.0 if winner in (OUTCOME_A, OUTCOME_B) else 0.0,
        weight=1.0,
        judge=voter[:16],
        categories=_json_list(cats),
        language=lang or "",
        created=created,
        flags=_json_list(flags),
    )


def _stream(qs: QuerySet[Any], chunk_size: int) -> Iterator[tuple[Any, ...]]:
    """Rows of a ``values_list`` query from a server-side cursor, ``chunk_size`` at a time.

    Inside a transaction on PostgreSQL the rows come straight from a psycopg named cursor
    (no WITH HOLD materialisation, no per-row Django converters: 2-3x faster for exports);
    otherwise ``.iterator(chunk_size=...)``, which is also a server-side cursor on PostgreSQL.
    """
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield from qs.iterator(chunk_size=chunk_size)
        return
    sql, params = qs.query.sql_with_params()
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor(name=f"prefs_{uuid.uuid4().hex}") as cursor:
        cursor.itersize = chunk_size
        cursor.execute(sql, params)
        yield from cursor


def _prepared(qs: QuerySet[Any]) -> list[Any]:
    """The rows of ``qs``, on PostgreSQL as a prepared statement: planning the page query (the
    vote subquery, two filtered joins) took ~8 ms per request against ~5 ms to run it; psycopg
    keeps the statement per connection (the pool keeps the connections) and PostgreSQL its
    plan. The text is the same for every page of one filter shape (server-side binding)."""
    if connection.vendor != "postgresql":
        return list(qs)
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 0  # prepare at the first execution: this statement only
    try:
        return list(qs)
    finally:
        raw.prepare_threshold = threshold


def iter_arena_pairs(
    filters: PairFilters,
    *,
    after_vote_id: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    vote_limit: int | None = None,
) -> Iterator[Pair]:
    if SOURCE_ARENA not in filters.sources:
        return
    qs = arena_turn_rows(filters, after_vote_id=after_vote_id, vote_limit=vote_limit)
    # A page is small and bounded: one plain query beats a cursor's DECLARE/FETCH/CLOSE trips.
    rows = iter(_prepared(qs)) if vote_limit is not None else _stream(qs, chunk_size)
    for _vote_id, turn_rows in groupby(rows, key=lambda r: r[0]):
        yield _pair_from_turn_rows(list(turn_rows))


# --- the one stream ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamPosition:
    """Where a page of the stream ended: (source order, source pk, sub index)."""

    phase: int = 0  # 0 = arena, 1 = annotation
    pk: int = 0
    sub: int = -1


def iter_pairs(
    filters: PairFilters,
    *,
    after: StreamPosition | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    weighted: bool = True,
    vote_limit: int | None = None,
) -> Iterator[Pair]:
    """Arena votes, then annotation rankings' pairs, filtered, in one fixed order.

    ``vote_limit`` (for a page of ``n``: ``n + 1``) stops the arena query early; the caller
    takes the first ``n`` pairs.
    """
    after = after or StreamPosition()
    if after.phase == 0:
        yield from iter_arena_pairs(
            filters, after_vote_id=after.pk, chunk_size=chunk_size, vote_limit=vote_limit
        )
    after_ranking = after.pk if after.phase == 1 else 0
    for ranking in iter_rankings(filters, after_pk=max(after_ranking - 1, 0)):
        for pair in expand_ranking(ranking, weighted=weighted):
            if after.phase == 1 and ranking.pk == after.pk and pair.sub_index <= after.sub:
                continue
            if _pair_allowed(pair, filters):
                yield pair


def pair_to_json(pair: Pair) -> dict[str, Any]:
    """The API's representation of a pair (documented by ``PairOutput``; plain code is ~20x
    faster than a DRF serializer for a page of 500)."""
    return {
        "id": pair.id,
        "source": pair.source,
        "prompts": pair.prompts,
        "response_a": pair.response_a,
        "response_b": pair.response_b,
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "outcome": pair.outcome,
        "margin": pair.margin,
        "weight": pair.weight,
        "judge": pair.judge,
        "categories": pair.categories,
        "language": pair.language,
        "turns": len(pair.prompts),
        "created": pair.created.isoformat().replace("+00:00", "Z"),
        "agreement": pair.agreement,
        "trust": pair.trust,
        "flags": pair.flags,
    }


def position_of(pair: Pair) -> StreamPosition:
    phase = 0 if pair.source == SOURCE_ARENA else 1
    return StreamPosition(phase=phase, pk=pair.source_pk, sub=pair.sub_index)


def count_pairs_estimate(filters: PairFilters) -> int:
    """Arena pairs exactly plus annotation pairs (K(K-1)/2 each); used for progress only."""
    total = vote_queryset(filters).count() if SOURCE_ARENA in filters.sources else 0
    for ranking in iter_rankings(filters):
        k = len(ranking.responses)
        total += k * (k - 1) // 2
    return total


def snapshot_ids() -> tuple[int, int]:
    """(highest vote id, highest annotation ranking id) right now: what a release is cut from."""
    max_vote = Vote.objects.aggregate(m=Max("id"))["m"] or 0
    max_annotation = 0
    source = ranking_source()
    if source is not None:
        for raw in source():
            pk = _get(raw, "annotation_id", None) or _get(raw, "pk", 0)
            max_annotation = max(max_annotation, int(pk))
    return max_vote, max_annotation


# --- browse helpers (API) ----------------------------------------------------------------------


def battles_for_browse() -> QuerySet[Battle]:
    return (
        Battle.objects.filter(vote__isnull=False)
        .select_related("model_a", "model_b", "vote")
        .prefetch_related("turns__responses")
    )


def models_for_browse() -> QuerySet[LLM]:
    return LLM.objects.filter(active=True).order_by("slug")
