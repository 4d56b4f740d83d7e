"""The pair stream's vocabulary: filters, pairs, rankings, and ranking expansion (no queries).

A ``Pair`` is one preference judgment between two responses to the same prompt; its ``winner``
(a / b / tie / both_bad, the arena's ``Vote.winner`` values) is from side a's point of view. The
public API and exports keep their own field names (``outcome`` in the pairs API).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SOURCE_ARENA = "arena"
SOURCE_ANNOTATION = "annotation"
SOURCE_CONSENSUS = "consensus"
SOURCES = (SOURCE_ARENA, SOURCE_ANNOTATION, SOURCE_CONSENSUS)

WINNER_A = "a"
WINNER_B = "b"
WINNER_TIE = "tie"
WINNER_BOTH_BAD = "both_bad"
WINNERS = (WINNER_A, WINNER_B, WINNER_TIE, WINNER_BOTH_BAD)

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
    it. ``winner`` is from side a's point of view (``a`` means a was preferred).
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
    winner: str
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
        return self.winner in (WINNER_A, WINNER_B)

    def oriented(self) -> tuple[list[str], list[str], str, str]:
        """(chosen, rejected, chosen model, rejected model); for a tie side a comes first."""
        if self.winner == WINNER_B:
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
            winner = WINNER_A if ra < rb else WINNER_B if rb < ra else WINNER_TIE
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
                winner=winner,
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


@dataclass(frozen=True)
class StreamPosition:
    """Where a page of the stream ended: (source order, source pk, sub index)."""

    phase: int = 0  # 0 = arena, 1 = annotation
    pk: int = 0
    sub: int = -1


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
        "outcome": pair.winner,  # the public API's name for the winner, kept
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
