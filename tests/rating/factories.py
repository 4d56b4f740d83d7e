"""Test data for the rating app: rows created directly (the vote service is built elsewhere).

``vote`` mimics what ``arena.services.vote_cast`` does: the vote and its counts in one
transaction through ``arena.counts.counts_add_vote``.
"""

from __future__ import annotations

import itertools
import uuid

from django.db import transaction

from arena.counts import counts_add_vote
from arena.models import LLM, Battle, Provider, Response, Turn, Vote

_seq = itertools.count(1)


def provider(name: str = "demo-test") -> Provider:
    return Provider.objects.get_or_create(name=name, defaults={"kind": "demo"})[0]


def llm(slug: str | None = None, **fields: object) -> LLM:
    slug = slug or f"model-{next(_seq)}"
    defaults = {
        "display_name": slug.replace("-", " ").title(),
        "organisation": "Acme",
        "license": "Apache-2.0",
        "provider": provider(),
        "provider_model_id": slug,
    }
    defaults.update(fields)
    return LLM.objects.get_or_create(slug=slug, defaults=defaults)[0]


def battle(
    a: LLM,
    b: LLM,
    *,
    categories: list[str] | None = None,
    mode: str = Battle.Mode.ANONYMOUS,
    voter: str = "voter-1",
    features: tuple[tuple[int, int, int, int], tuple[int, int, int, int]] = (
        (100, 0, 0, 0),
        (100, 0, 0, 0),
    ),
) -> Battle:
    bt = Battle.objects.create(
        model_a=a,
        model_b=b,
        mode=mode,
        voter=voter,
        categories=categories if categories is not None else ["all"],
        state=Battle.State.ACTIVE,
    )
    turn = Turn.objects.create(battle=bt, index=0, prompt="hello", prompt_chars=5)
    for side, (length, headers, lists, bold) in zip("ab", features, strict=True):
        Response.objects.create(
            turn=turn, side=side, text="x", state=Response.State.DONE, length=length,
            header_count=headers, list_count=lists, bold_count=bold,
        )  # fmt: skip
    return bt


def vote(bt: Battle, winner: str, *, flags: list[str] | None = None, voter: str = "") -> Vote:
    with transaction.atomic():
        v = Vote(battle=bt, winner=winner, voter=voter or bt.voter, turns=1, flags=flags or [])
        # As arena.services.vote_cast does: the conversation's style totals on the vote.
        v.set_style_from(list(Response.objects.filter(turn__battle=bt)))
        v.save(force_insert=True)
        Battle.objects.filter(pk=bt.pk).update(state=Battle.State.VOTED)
        counts_add_vote(v)
    return v


def votes(
    a: LLM, b: LLM, winner: str, n: int, *, categories: list[str] | None = None, **kw: object
) -> list[Vote]:
    """``n`` battles between a and b, each with one vote for ``winner`` (distinct voters)."""
    return [
        vote(battle(a, b, categories=categories, voter=f"v-{uuid.uuid4().hex[:8]}"), winner, **kw)  # type: ignore[arg-type]
        for _ in range(n)
    ]
