"""Test data for the annotation app: projects, items and personas, set up through services."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from annotations.models import Item, ItemResponse, Project

_seq = itertools.count(1)
PASSWORD = "pw-for-tests-0123"


def user(name: str | None = None, **extra: Any) -> Any:
    name = name or f"user{next(_seq)}"
    return get_user_model().objects.create_user(name, f"{name}@example.org", PASSWORD, **extra)


def project(*, annotators: list[Any] = (), reviewers: list[Any] = (), **fields: Any) -> Project:
    n = next(_seq)
    defaults: dict[str, Any] = {
        "slug": f"proj-{n}",
        "name": f"Project {n}",
        "guidelines": "# Rank\nPrefer **helpful** answers.",
        "k": 3,
        "overlap": 2,
        "lock_ttl_seconds": 600,
        "label_schema": [
            {"name": "helpfulness", "kind": "likert", "min": 1, "max": 5},
            {"name": "harmless", "kind": "yesno"},
        ],
    }
    defaults.update(fields)
    p = Project.objects.create(**defaults)
    p.annotators.add(*annotators)
    p.reviewers.add(*reviewers)
    return p


def items(p: Project, n: int, *, gold: bool = False) -> list[Item]:
    out = []
    for i in range(n):
        item = Item.objects.create(
            project=p,
            prompt=f"Prompt {i} {'gold' if gold else ''}",
            is_gold=gold,
            gold_ranking=[[j] for j in range(p.k)] if gold else None,
        )
        ItemResponse.objects.bulk_create(
            [
                ItemResponse(item=item, index=j, text=f"Answer {j} to {i}", source_model=f"m{j}")
                for j in range(p.k)
            ]
        )
        out.append(item)
    return out


def answer(item: Item, ranking: list[list[int]], *, p: Project | None = None) -> dict[str, Any]:
    """A full answer naming responses by public id, from a ranking of indices."""
    ids = {r.index: str(r.public_id) for r in item.responses.all()}
    project_ = p or item.project
    labels = {
        ids[i]: {s["name"]: (s.get("max", 1)) for s in project_.labels} for i in range(project_.k)
    }
    return {
        "ranking": [[ids[i] for i in g] for g in ranking],
        "labels": labels,
        "time_spent_ms": 1234,
    }
