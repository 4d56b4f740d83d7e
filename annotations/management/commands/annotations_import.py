"""Load items into a project from a JSONL or CSV file (the same validation as the upload page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations import services
from annotations.models import Project
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Import items from a JSONL or CSV file into an annotation project (all or nothing)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("project", help="project slug")
        parser.add_argument("path")
        parser.add_argument("--format", choices=["jsonl", "csv"])
        parser.add_argument("--as-user", help="staff username to act as (default: first superuser)")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project {opts['project']!r}")
        users = get_user_model().objects.filter(is_staff=True)
        user = users.filter(username=opts["as_user"]).first() if opts["as_user"] else users.first()
        if user is None:
            raise CommandError("needs a staff user to act as (create one with createsuperuser)")
        path = Path(opts["path"])
        fmt = opts["format"] or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        try:
            n = services.items_import(
                project=project, user=user, content=path.read_bytes(), fmt=fmt
            )
        except ApplicationError as exc:
            for e in exc.extra.get("errors", []):
                self.stderr.write(f"line {e['line']}: {e['message']}")
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"imported {n} items into {project.slug}"))
