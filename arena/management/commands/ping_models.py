"""``manage.py ping_models``: a tiny request to every active model, with status and latency.

A model whose provider names a key variable (``api_key_env``) that is not set in this
environment is not pinged: it is reported as ``key missing`` with the variable's name (never a
value), because the request would go out without authorization and its 401 would not say why.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from arena.models import LLM
from arena.providers import Completion, Endpoint, GenerationParams, ProviderError, get_client

KEY_MISSING = "key missing"


async def _ping(endpoint: Endpoint, params: GenerationParams) -> tuple[str, float, str]:
    started = time.perf_counter()
    try:
        async with get_client(endpoint) as client:
            async for event in client.stream([{"role": "user", "content": "Say OK."}], params):
                if isinstance(event, Completion):
                    return "ok", time.perf_counter() - started, event.text[:40].replace("\n", " ")
    except ProviderError as exc:
        return type(exc).__name__, time.perf_counter() - started, exc.user_message
    return "no completion", time.perf_counter() - started, ""


def _ping_params(llm: LLM) -> GenerationParams:
    params = llm.generation_params()
    return GenerationParams(
        model=params.model, temperature=0, max_tokens=8,
        system_prompt=params.system_prompt, extra_body=params.extra_body, seed=1,
    )  # fmt: skip


def _missing_key(llm: LLM) -> str | None:
    """The unset key variable's name, or None when the provider needs no key or has it."""
    provider = llm.provider
    return provider.api_key_env if provider.api_key_env and not provider.key_configured else None


async def _ping_all(models: list[LLM]) -> list[tuple[str, float, str]]:
    async def one(llm: LLM) -> tuple[str, float, str]:
        variable = _missing_key(llm)
        if variable is not None:
            return KEY_MISSING, 0.0, f"{variable} is not set; not pinged"
        return await _ping(llm.provider.to_endpoint(), _ping_params(llm))

    return await asyncio.gather(*(one(llm) for llm in models))


class Command(BaseCommand):
    help = "Send a tiny request to every active model and print status and latency."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Include inactive models.")

    def handle(self, *args: Any, all: bool, **options: Any) -> None:
        queryset = LLM.objects.select_related("provider")
        models = list(queryset if all else queryset.filter(active=True))
        if not models:
            self.stdout.write("no models registered (try: manage.py seed_demo)")
            return
        results = asyncio.run(_ping_all(models))
        width = max(len(llm.slug) for llm in models)
        self.stdout.write(f"{'model'.ljust(width)}  {'status':<22} {'latency':>9}  sample")
        for llm, (status, seconds, sample) in zip(models, results, strict=True):
            latency = f"{seconds * 1000:>7.0f}ms" if status != KEY_MISSING else f"{'-':>9}"
            line = f"{llm.slug.ljust(width)}  {status:<22} {latency}  {sample}"
            self.stdout.write(
                self.style.SUCCESS(line) if status == "ok" else self.style.ERROR(line)
            )
        answered = sum(status == "ok" for status, _, _ in results)
        missing = sum(status == KEY_MISSING for status, _, _ in results)
        summary = f"{answered}/{len(models)} answered"
        if missing:
            summary += f"; {missing} not pinged: key variable not set"
        self.stdout.write(summary)
