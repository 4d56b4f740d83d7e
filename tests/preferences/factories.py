"""Factories for preference tests: LLMs, voted battles and annotation rankings, all fixed values."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission, User

from arena.models import LLM, Battle, Provider, Response, Turn, Vote
from preferences.selectors import RankedResponse, Ranking

BASE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_seq = itertools.count(1)


def provider() -> Provider:
    return Provider.objects.get_or_create(name="demo", defaults={"kind": "demo"})[0]


def llm(slug: str) -> LLM:
    return LLM.objects.get_or_create(
        slug=slug,
        defaults={
            "display_name": slug.title(),
            "provider": provider(),
            "provider_model_id": slug,
            "created": BASE_TIME,
        },
    )[0]


def voted_battle(
    *,
    model_a: str = "alpha",
    model_b: str = "beta",
    prompts: list[str] | None = None,
    answers_a: list[str] | None = None,
    answers_b: list[str] | None = None,
    winner: str = "a",
    flags: list[str] | None = None,
    categories: list[str] | None = None,
    language: str = "en",
    voter: str = "f00dfeedcafebabe0123456789abcdef",
    minutes: int | None = None,
    key: int | None = None,
) -> Battle:
    """A battle with its turns, two done responses per turn, and a vote; ``key`` fixes its id."""
    n = key if key is not None else 10_000 + next(_seq)
    prompts = prompts or [f"Question {n}?"]
    answers_a = answers_a or [f"Answer A to {p}" for p in prompts]
    answers_b = answers_b or [f"Answer B to {p}" for p in prompts]
    created = BASE_TIME + timedelta(minutes=n if minutes is None else minutes)
    battle = Battle.objects.create(
        public_id=uuid.UUID(int=n),
        model_a=llm(model_a),
        model_b=llm(model_b),
        voter=voter,
        state=Battle.State.VOTED,
        categories=categories if categories is not None else ["all"],
        language=language,
        created=created,
    )
    for i, (prompt, a, b) in enumerate(zip(prompts, answers_a, answers_b, strict=True)):
        turn = Turn.objects.create(battle=battle, index=i, prompt=prompt, created=created)
        Response.objects.create(turn=turn, side="a", text=a, state="done", created=created)
        Response.objects.create(turn=turn, side="b", text=b, state="done", created=created)
    Vote.objects.create(
        battle=battle,
        winner=winner,
        voter=voter,
        turns=len(prompts),
        flags=flags or [],
        created=created + timedelta(seconds=30),
    )
    return battle


def ranking(
    pk: int,
    ranks: list[int],
    *,
    prompt: str = "Rank these",
    models: list[str] | None = None,
    trust: float | None = 0.9,
    agreement: float | None = 0.8,
    labels: list[dict[str, Any]] | None = None,
    judge: str = "ann-1",
    categories: list[str] | None = None,
    language: str = "en",
) -> Ranking:
    k = len(ranks)
    models = models or [f"m{i}" for i in range(k)]
    labels = labels or [{} for _ in range(k)]
    return Ranking(
        pk=pk,
        prompts=[prompt],
        responses=[
            RankedResponse(f"reply {i} to {prompt}", models[i], labels[i]) for i in range(k)
        ],
        ranks=ranks,
        judge=judge,
        created=BASE_TIME + timedelta(hours=pk),
        trust=trust,
        agreement=agreement,
        categories=categories or ["all"],
        language=language,
    )


def researcher(username: str = "researcher", *, staff: bool = False) -> User:
    user = User.objects.create_user(username, password="pw-12345-long", is_staff=staff)
    user.user_permissions.add(Permission.objects.get(codename="access_datasets"))
    return User.objects.get(pk=user.pk)  # drop the permission cache


def outsider(username: str = "outsider") -> User:
    return User.objects.create_user(username, password="pw-12345-long")
