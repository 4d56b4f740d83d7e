from django.apps import AppConfig
from django.conf import settings


class ArenaConfig(AppConfig):
    name = "arena"
    verbose_name = "Arena"

    def ready(self) -> None:
        from core.background import register_periodic

        # Ends the responses of a dead worker within ARENA_LEASE_SECONDS plus this period.
        register_periodic(
            "arena-sweep-responses",
            "arena.sweep_responses",
            float(settings.ARENA_LEASE_SWEEP_SECONDS),
        )
