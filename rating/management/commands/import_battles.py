"""``manage.py import_battles FILE``: load a Chatbot Arena battle file (idempotent)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rating.engine import RatingError
from rating.imports import battles_import


class Command(BaseCommand):
    help = (
        "Import battles in Chatbot Arena's format (JSON array, JSONL or Parquet; model_a, "
        "model_b, winner, and conversation_a/b, language, turn, judge, tstamp, anony when "
        "present). Unknown models are created inactive under the provider 'imported'. "
        "Importing the same file again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument(
            "--recompute", action="store_true", help="run the full leaderboard recompute after"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = battles_import(path=options["file"])
        except (RatingError, OSError, json.JSONDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(report))
        if options["recompute"]:
            from rating.services import leaderboard_recompute_full

            self.stdout.write(json.dumps(leaderboard_recompute_full(), default=str))
