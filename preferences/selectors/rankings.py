"""Annotation rankings in the pair stream: the seam to ``annotations.selectors`` and the filter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from preferences.selectors.pairs import (
    SOURCE_ANNOTATION,
    SOURCE_ARENA,
    WINNER_BOTH_BAD,
    WINNER_TIE,
    Pair,
    PairFilters,
    RankedResponse,
    Ranking,
)


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


def pair_allowed(pair: Pair, f: PairFilters) -> bool:
    if pair.winner == WINNER_TIE:
        return f.include_ties
    if pair.winner == WINNER_BOTH_BAD:
        return f.include_both_bad
    return True


def max_ranking_id() -> int:
    """The highest annotation ranking id right now (0 without the annotations app)."""
    highest = 0
    source = ranking_source()
    if source is not None:
        for raw in source():
            pk = _get(raw, "annotation_id", None) or _get(raw, "pk", 0)
            highest = max(highest, int(pk))
    return highest
