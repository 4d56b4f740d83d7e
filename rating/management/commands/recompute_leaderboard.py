"""``manage.py recompute_leaderboard``: the full recompute now (or only the live refresh)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rating import services


class Command(BaseCommand):
    help = (
        "Rebuild the vote counts from the votes, flag anomalous and position-locked voters, "
        "fit every category "
        "(plain and style controlled), write snapshots and the active-sampling weights."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--live", action="store_true", help="only refit plain BT from the counts (fast)"
        )
        parser.add_argument(
            "--no-anomalies",
            action="store_true",
            help="skip both voter tests (anomalous, position-locked)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["live"]:
            snaps = services.leaderboard_refresh(force=True)
            self.stdout.write(f"{len(snaps)} snapshot(s) written from the counts")
            return
        report = services.leaderboard_recompute_full(detect_anomalies=not options["no_anomalies"])
        self.stdout.write(json.dumps(report, indent=2, default=str))
