from __future__ import annotations

import asyncio
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from arena.models import LLM
from arena.providers import Completion, GenerationParams, ProviderError, get_client


async def _ping(endpoint: Any, params: GenerationParams) -> tuple[str, float, str]:
    started = time.perf_counter()
    try:
        async with get_client(endpoint) as client:
            async for event in client.stream([{"role": "user", "content": "Say OK."}], params):
                if isinstance(event, Completion):
                    return "ok", time.perf_counter() - started, event.text[:40].replace("\n", " ")
    except ProviderError as exc:
        return type(exc).__name__, time.perf_counter() - started, exc.user_message
    return "no completion", time.perf_counter() - started, ""


class Command(BaseCommand):
    help = "Send a tiny request to every active model and print status and latency."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Include inactive models.")

    def handle(self, *args: Any, all: bool, **options: Any) -> None:
        models = LLM.objects.select_related("provider")
        if not all:
            models = models.filter(active=True)
        jobs = []
        for llm in models:
            params = llm.generation_params()
            params = GenerationParams(
                model=params.model, temperature=0, max_tokens=8,
                system_prompt=params.system_prompt, extra_body=params.extra_body, seed=1,
            )  # fmt: skip
            jobs.append((llm, llm.provider.to_endpoint(), params))

        async def run_all() -> list[tuple[str, float, str]]:
            return await asyncio.gather(*(_ping(ep, p) for _, ep, p in jobs))

        results = asyncio.run(run_all()) if jobs else []
        if not jobs:
            self.stdout.write("no models registered (try: manage.py seed_demo)")
            return
        width = max(len(llm.slug) for llm, _, _ in jobs)
        self.stdout.write(f"{'model'.ljust(width)}  {'status':<22} {'latency':>9}  sample")
        failed = 0
        for (llm, _, _), (status, seconds, sample) in zip(jobs, results, strict=True):
            failed += status != "ok"
            line = f"{llm.slug.ljust(width)}  {status:<22} {seconds * 1000:>7.0f}ms  {sample}"
            self.stdout.write(
                self.style.SUCCESS(line) if status == "ok" else self.style.ERROR(line)
            )
        self.stdout.write(f"{len(jobs) - failed}/{len(jobs)} answered")
