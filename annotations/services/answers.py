"""Answers as annotators hand them in: reading them (the task form, a JSON mapping) and
checking them against the item and the project. No writes: ``submissions`` stores them.

Two steps, two types:

- ``AnswerInput``: what was sent, responses named by their public ids. Its shape is checked
  (the ranking is a list of groups, labels an object per response, flags known, the comment
  short text) but nothing against the item. Built by ``answer_from_post`` (the HTML task form)
  or ``answer_input`` (a mapping: the API's JSON, or a dict from code).
- ``Answer``: what ``answer_clean`` makes of it for one item: responses named by their index in
  the item, every response and label known, values in range. A draft (``final=False``) may be
  incomplete; a final answer ranks every response and gives every label.

Every refusal is an ``ApplicationError`` with code ``invalid_answer`` (``labels_missing`` when a
final answer lacks labels).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from annotations import quality
from annotations.models import Annotation, Assignment, Item, Project, label_bounds
from core.errors import ApplicationError

MAX_COMMENT_CHARS = 5000
MAX_TIME_SPENT_MS = 24 * 3600 * 1000
PAIRWISE_CHOICES = ("a", "b", "tie")

LabelValue = str | int | float | bool | None
LabelSpec = dict[str, Any]


class InvalidAnswer(ApplicationError):
    code = "invalid_answer"
    status = 400


@dataclass(frozen=True)
class AnswerInput:
    """An answer as sent: responses named by their public ids, best first in the ranking."""

    ranking: list[list[str]] = field(default_factory=list)
    labels: dict[str, dict[str, LabelValue]] = field(default_factory=dict)  # {id: {label: v}}
    flags: list[str] = field(default_factory=list)  # sorted, no repeats
    comment: str = ""
    time_spent_ms: int = 0


@dataclass
class Answer:
    """An answer checked against its item: responses named by their index in the item."""

    ranking: quality.Ranking
    labels: dict[str, dict[str, int]]  # {str(index): {label: value}}
    flags: list[str]
    comment: str
    time_spent_ms: int


# --- reading ---------------------------------------------------------------------------------------


def answer_input(data: Mapping[str, Any]) -> AnswerInput:
    """An ``AnswerInput`` from a mapping with the keys ``ranking`` (groups of response ids, best
    first), ``labels`` ({response id: {label: value}}), ``flags``, ``comment`` and
    ``time_spent_ms``; every key may be missing. An unreadable time counts as 0."""
    return AnswerInput(
        ranking=_ranking_shape(data.get("ranking") or []),
        labels=_labels_shape(data.get("labels") or {}),
        flags=_flags_shape(data.get("flags") or []),
        comment=_comment_shape(data.get("comment") or ""),
        time_spent_ms=_time_spent(data.get("time_spent_ms")),
    )


def answer_from_post(post: QueryDict, *, assignment: Assignment) -> AnswerInput:
    """The task page's form as an ``AnswerInput``.

    Fields: ``ranking`` (JSON: groups of response ids, best first), or on a two-response item a
    ``choice`` of ``a``, ``b`` or ``tie`` naming the responses by their place on the page (it
    wins over ``ranking``); ``label:<response id>:<label>`` per value; ``flags`` (repeated);
    ``comment``; ``time_spent_ms``. Raises ``InvalidAnswer`` when a field cannot be read.
    """
    return answer_input(
        {
            "ranking": _posted_ranking(post, assignment),
            "labels": _posted_labels(post),
            "flags": post.getlist("flags"),
            "comment": post.get("comment", ""),
            "time_spent_ms": post.get("time_spent_ms") or 0,
        }
    )


def _posted_ranking(post: QueryDict, assignment: Assignment) -> Any:
    choice = post.get("choice")
    if choice in PAIRWISE_CHOICES:
        ids = [str(r.public_id) for r in assignment.item.responses.all()]
        if len(ids) == 2:
            first, second = (ids[i] for i in assignment.display_order or range(2))
            return {"a": [[first], [second]], "b": [[second], [first]], "tie": [[first, second]]}[
                choice
            ]
    try:
        return json.loads(post.get("ranking") or "[]")
    except json.JSONDecodeError:
        raise InvalidAnswer("The ranking must be a list.") from None


def _posted_labels(post: QueryDict) -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = {}
    for key, value in post.items():
        if key.startswith("label:"):
            parts = key.split(":", 2)
            if len(parts) != 3:
                raise InvalidAnswer("Labels name an unknown response.")
            labels.setdefault(parts[1], {})[parts[2]] = value
    return labels


def _ranking_shape(raw: Any) -> list[list[str]]:
    if not isinstance(raw, list):
        raise InvalidAnswer("The ranking must be a list.")
    if not all(isinstance(group, list) for group in raw):
        raise InvalidAnswer("Invalid ranking: every group of the ranking must be a list.")
    return [[str(rid) for rid in group] for group in raw]


def _labels_shape(raw: Any) -> dict[str, dict[str, LabelValue]]:
    if not isinstance(raw, dict):
        raise InvalidAnswer("Labels must be an object.")
    if not all(isinstance(values, dict) for values in raw.values()):
        raise InvalidAnswer("Labels name an unknown response.")
    return {str(rid): dict(values) for rid, values in raw.items()}


def _flags_shape(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(flag, str) for flag in raw):
        raise InvalidAnswer("Unknown flag.")
    if not set(raw) <= set(Annotation.Flag.values):
        raise InvalidAnswer("Unknown flag.")
    return sorted(set(raw))


def _comment_shape(raw: Any) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_COMMENT_CHARS:
        raise InvalidAnswer(f"The comment must be text up to {MAX_COMMENT_CHARS} characters.")
    return raw


def _time_spent(raw: Any) -> int:
    try:
        return max(0, min(int(raw or 0), MAX_TIME_SPENT_MS))
    except (TypeError, ValueError):
        return 0


# --- checking against the item ---------------------------------------------------------------------


def answer_clean(project: Project, item: Item, answer: AnswerInput, *, final: bool) -> Answer:
    """``answer`` checked against ``item`` (of ``project``); a final one must be complete.

    On a rating project the final ranking is derived from the first likert label's values.
    """
    ids = {str(r.public_id): r.index for r in item.responses.all()}
    ranking = _clean_ranking(answer.ranking, ids, final=final)
    labels = _clean_labels(answer.labels, ids, project.labels)
    if final:
        _require_every_label(labels, project.labels, k=len(ids))
        if project.task_type == Project.TaskType.RATE:
            ranking = _ranking_from_ratings(labels, project.labels, k=len(ids))
    return Answer(ranking, labels, answer.flags, answer.comment, answer.time_spent_ms)


def _clean_ranking(raw: list[list[str]], ids: dict[str, int], *, final: bool) -> quality.Ranking:
    """Ids to indices, empty groups dropped; a final ranking places each response once, a draft
    places each at most once."""
    if len(raw) > len(ids):  # a draft with 10,000 groups was stored as it came
        raise InvalidAnswer(f"Invalid ranking: more groups than the {len(ids)} responses.")
    try:
        ranking = [[_index_of(rid, ids) for rid in group] for group in raw]
        ranking = [group for group in ranking if group]
        if not final and not ranking:
            return ranking  # a draft may have no ranking yet
        # A draft may be partial, never malformed: each response at most once.
        return quality.validate_ranking(ranking, len(ids), complete=final)
    except ValueError as exc:
        raise InvalidAnswer(f"Invalid ranking: {exc}.") from None


def _index_of(rid: str, ids: dict[str, int]) -> int:
    if rid not in ids:
        raise ValueError("the ranking names a response that is not in this item")
    return ids[rid]


def _clean_labels(
    raw: dict[str, dict[str, LabelValue]], ids: dict[str, int], schema: list[LabelSpec]
) -> dict[str, dict[str, int]]:
    """``{str(index): {label: number}}``; empty values are left out."""
    specs = {s["name"]: s for s in schema}
    labels: dict[str, dict[str, int]] = {}
    for rid, values in raw.items():
        if rid not in ids:
            raise InvalidAnswer("Labels name an unknown response.")
        numbers = {name: _label_number(name, value, specs) for name, value in values.items()}
        labels[str(ids[rid])] = {name: n for name, n in numbers.items() if n is not None}
    return labels


def _label_number(name: str, value: LabelValue, specs: dict[str, LabelSpec]) -> int | None:
    """The label's value as a number in its range (yes/no as 1/0); ``None`` when left empty."""
    if name not in specs:
        raise InvalidAnswer(f"Unknown label {name!r}.")
    if value in (None, ""):
        return None
    if specs[name]["kind"] == "yesno" and value in ("yes", "no", True, False):
        value = 1 if value in ("yes", True) else 0
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidAnswer(f"Label {name!r} must be a number.") from None
    lo, hi = label_bounds(specs[name])
    if not lo <= number <= hi:
        raise InvalidAnswer(f"Label {name!r} must be between {lo} and {hi}.")
    return number


def _require_every_label(
    labels: dict[str, dict[str, int]], schema: list[LabelSpec], k: int
) -> None:
    names = {s["name"] for s in schema}
    for idx in range(k):
        missing = names - set(labels.get(str(idx), {}))
        if missing:
            raise InvalidAnswer(
                f"Give every label for every response (missing: {', '.join(sorted(missing))}).",
                code="labels_missing",
            )


def _ranking_from_ratings(
    labels: dict[str, dict[str, int]], schema: list[LabelSpec], k: int
) -> quality.Ranking:
    first = next(s["name"] for s in schema if s["kind"] == "likert")
    return quality.ranking_from_scores([labels[str(i)][first] for i in range(k)])
