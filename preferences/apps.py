from django.apps import AppConfig
from django.conf import settings


class PreferencesConfig(AppConfig):
    name = "preferences"
    verbose_name = "Preferences and datasets"

    def ready(self) -> None:
        from core.background import register_periodic

        # Ends the builds of a dead worker within PREFERENCES_RELEASE_LEASE_SECONDS plus this.
        register_periodic(
            "preferences-sweep-releases",
            "preferences.tasks.sweep_releases",
            float(settings.PREFERENCES_RELEASE_SWEEP_SECONDS),
        )
