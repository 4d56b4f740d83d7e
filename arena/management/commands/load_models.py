from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.model_config import ConfigError, load_config
from arena.registry import registry_apply


class Command(BaseCommand):
    help = (
        "Create or update providers and models from a YAML/JSON file (ours or FastChat's "
        "api_endpoint.json). Idempotent; a bad file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument(
            "--skip-unsupported",
            action="store_true",
            help="FastChat files: skip entries whose api_type we cannot serve instead of failing.",
        )

    def handle(self, *args: Any, file: str, skip_unsupported: bool, **options: Any) -> None:
        try:
            config = load_config(file, skip_unsupported=skip_unsupported)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        for warning in config.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        report = registry_apply(config=config)
        for label in report.created:
            self.stdout.write(self.style.SUCCESS(f"created {label}"))
        for label in report.updated:
            self.stdout.write(f"updated {label}")
        self.stdout.write(
            f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged"
        )
