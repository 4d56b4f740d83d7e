"""Arena test data, set up through services where one exists."""

from __future__ import annotations

import uuid

from arena.models import LLM, Battle, Provider, Response, Turn

MARKERS = ("zqxmodelname", "zqxdisplay", "zqxorg", "zqxprovider", "zqxproviderid")


def demo_provider(name: str = "demo-test", **options: float) -> Provider:
    return Provider.objects.create(
        name=name, kind="demo", options={"tokens_per_s": 0, "first_token_delay_s": 0, **options}
    )


def llm(provider: Provider, slug: str, **fields: object) -> LLM:
    defaults: dict[str, object] = {
        "display_name": slug.title(),
        "organisation": "Org",
        "provider_model_id": slug,
    }
    defaults.update(fields)
    return LLM.objects.create(provider=provider, slug=slug, **defaults)


def demo_models(n: int = 3) -> list[LLM]:
    provider = demo_provider()
    slugs = ["demo-scholar", "demo-terse", "demo-verbose", "demo-generic", "demo-offtopic"]
    return [llm(provider, slug) for slug in slugs[:n]]


def marked_models(base_url: str) -> list[LLM]:
    """Two models whose every identifying field carries a unique marker string, served by an
    OpenAI-compatible server at ``base_url`` (the fake server in tests)."""
    models = []
    for i in (1, 2):
        provider = Provider.objects.create(
            name=f"{MARKERS[3]}{i}", kind="openai", base_url=base_url
        )
        models.append(
            LLM.objects.create(
                provider=provider,
                slug=f"{MARKERS[0]}{i}",
                display_name=f"{MARKERS[1]}{i}",
                organisation=f"{MARKERS[2]}{i}",
                provider_model_id=f"{MARKERS[4]}{i}",
            )
        )
    return models


def battle_with_turn(
    model_a: LLM,
    model_b: LLM,
    *,
    voter: str,
    states: tuple[str, str] = ("done", "done"),
    text: str = "answer",
) -> Battle:
    battle = Battle.objects.create(
        model_a=model_a, model_b=model_b, voter=voter, categories=["all"]
    )
    turn = Turn.objects.create(battle=battle, index=0, prompt="hello there")
    for side, state in zip("ab", states, strict=True):
        Response.objects.create(
            turn=turn, side=side, state=state, text=f"{text} {side}" if state == "done" else ""
        )
    return battle


def voter() -> str:
    return uuid.uuid4().hex
