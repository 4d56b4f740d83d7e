"""Return expired queue locks to the pool now (the periodic job does this every minute)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from annotations import services


class Command(BaseCommand):
    help = "Expire stale annotation locks."

    def handle(self, *args: Any, **opts: Any) -> None:
        self.stdout.write(f"{services.assignments_expire()} lock(s) expired")
