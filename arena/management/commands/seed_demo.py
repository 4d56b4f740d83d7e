from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from arena.models import LLM
from arena.registry import demo_seed


class Command(BaseCommand):
    help = "Register the built-in demo provider and its synthetic models (demo only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing if any model exists."
        )
        parser.add_argument("--tokens-per-s", type=float, default=40.0)
        parser.add_argument("--first-token-delay", type=float, default=0.4)

    def handle(
        self, *args: Any, if_empty: bool, tokens_per_s: float, first_token_delay: float, **o: Any
    ) -> None:
        if if_empty and LLM.objects.exists():
            self.stdout.write("models already registered; demo seed skipped")
            return
        report = demo_seed(tokens_per_s=tokens_per_s, first_token_delay_s=first_token_delay)
        self.stdout.write(
            self.style.SUCCESS(
                f"demo models: {len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.unchanged)} unchanged"
            )
        )
